"""Start the project's mock server on 127.0.0.1 for a test: in-process or as the CLI subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

from aiohttp import web

from agora.engine.inference.mock_server import MockServer, MockSettings
from agora.worlds.schelling_city import PLUGIN as CITY
from tests.helpers import REPO


@contextlib.asynccontextmanager
async def mock_server(**settings: object) -> AsyncIterator[tuple[str, MockServer]]:
    server = MockServer(MockSettings(**settings), [CITY.text_responder])  # type: ignore[arg-type]
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", server
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def mock_server_process(*flags: str) -> Iterator[str]:
    """``agora mock-server --port 0 ...`` as a user starts it; yields its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agora.engine.cli",
            "mock-server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *flags,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, f"mock server did not start: {line!r}"
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)

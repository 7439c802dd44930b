import os
import pty
import subprocess
import sys

import pytest

from agora.engine.progress import describe
from agora.engine.turns import RunTotals
from tests.helpers import CONFIG, REPO


def test_the_progress_line_says_what_a_user_watches():
    totals = RunTotals(
        decisions=200,
        invalid=5,
        errors=1,
        requests=230,
        answers=210,
        retries=20,
        tokens_in=90_000,
        tokens_out=12_000,
        cost_usd=0.4321,
        in_flight=64,
    )
    assert describe(totals, 2.0) == (
        "200 decisions, 100/s, 64 in flight, 102k tokens, $0.43, 20 retries, 2.5% invalid, 1 errors"
    )
    assert describe(RunTotals(), 0.0).startswith("0 decisions, 0/s")


@pytest.mark.slow
def test_a_terminal_gets_a_live_bar_and_a_pipe_gets_tick_lines(tmp_path):
    args = [
        sys.executable,
        "-m",
        "agora.engine.cli",
        "run",
        str(CONFIG),
        "--ticks",
        "3",
        "--agents",
        "30",
    ]
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*args, "--out", str(tmp_path / "tty")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    terminal = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0
    assert "3/3" in terminal and "decisions" in terminal and "in flight" in terminal
    assert "[info" not in terminal

    piped = subprocess.run(
        [*args, "--out", str(tmp_path / "pipe")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0
    assert piped.stderr.count("tick") >= 3 and "in flight" not in piped.stderr

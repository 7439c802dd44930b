"""Scheduling: efficiency against an ideal server, and barrier-free vs lockstep ticks.

- Efficiency: N decisions of the independent ``rounds_game`` through the openai-http path at
  concurrency C against ``agora mock-server`` (fixed latency L, optional cap K on requests served
  at once). The ideal throughput is min(C, K) / L; the figure is achieved / ideal.
- Barrier-free: the same game, 60 rounds per agent, on the offline backend with lognormal
  latency, run free-running and then with ``run.scheduler = "lockstep"``: the ratio of wall
  times. Both runs give the same decisions; only the waiting differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROUNDS = Path(__file__).resolve().parents[1] / "runs" / "rounds_game.toml"


def start_mock_server(
    latency_ms: float, max_concurrency: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """``agora mock-server`` in its own process on a free port of 127.0.0.1, and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agora.engine.cli",
            "mock-server",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--max-concurrency",
            str(max_concurrency),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", process.stdout.readline())
    if match is None:
        process.kill()
        raise RuntimeError("the mock server did not start")
    return process, match.group(1)


def _run(overrides: dict[str, Any]) -> tuple[float, int]:
    import uvloop

    from agora.engine.runner import execute, plan_run

    with tempfile.TemporaryDirectory(prefix="agora-bench-") as scratch:
        plan = plan_run(
            ROUNDS, {**overrides, "run.out": str(Path(scratch) / "run")}, now=datetime.now(UTC)
        )
        started = time.perf_counter()
        summary = uvloop.run(execute(plan))
        wall = time.perf_counter() - started
    if summary.valid != summary.decisions:
        raise RuntimeError(f"{summary.decisions - summary.valid} decisions were not valid")
    return wall, summary.decisions


def efficiency(
    decisions: int = 10_000,
    concurrency: int = 200,
    latency_ms: float = 100.0,
    cap: int = 0,
    adaptive: bool = False,
) -> dict[str, Any]:
    """Fixed concurrency by default: the client's own cost against the ideal. ``adaptive``:
    the default pace, learnt from 4 in flight up (its ramp and its probing cost something)."""
    agents = concurrency
    ticks = max(1, decisions // agents)
    server, url = start_mock_server(latency_ms, cap)
    try:
        wall, made = _run(
            {
                "run.ticks": ticks,
                "world.agents": agents,
                "inference.backend": "openai-http",
                "inference.endpoints": [url],
                "inference.model": "mock",
                "inference.concurrency": concurrency,
                "inference.adaptive_concurrency": adaptive,
                # Every request must reach the server: no answers from an earlier run's cache.
                "inference.cache": False,
            }
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    in_flight = min(concurrency, cap) if cap else concurrency
    ideal = in_flight / (latency_ms / 1000)
    achieved = made / wall
    return {
        "decisions": made,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "server_cap": cap or None,
        "adaptive": adaptive,
        "ideal_per_s": round(ideal, 1),
        "achieved_per_s": round(achieved, 1),
        "efficiency": round(achieved / ideal, 4),
        "wall_s": round(wall, 3),
    }


def barrier_free(
    agents: int = 100, rounds: int = 60, latency_ms: float = 20.0, sigma: float = 0.8
) -> dict[str, Any]:
    base = {
        "run.ticks": rounds,
        "world.agents": agents,
        "inference.concurrency": agents,
        "inference.offline.latency_ms": latency_ms,
        "inference.offline.latency_sigma": sigma,
    }
    free_wall, free_made = _run(base)
    lockstep_wall, lockstep_made = _run({**base, "run.scheduler": "lockstep"})
    return {
        "agents": agents,
        "rounds": rounds,
        "latency_ms": latency_ms,
        "sigma": sigma,
        "decisions": free_made,
        "free_running_s": round(free_wall, 3),
        "lockstep_s": round(lockstep_wall, 3),
        "speedup": round(lockstep_wall / free_wall, 3),
        "same_count": free_made == lockstep_made,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["efficiency", "barrier-free"])
    args = parser.parse_args()
    result = efficiency() if args.what == "efficiency" else barrier_free()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine overhead: offline decisions per second, end to end, in one process on one core.

Each case runs in a fresh interpreter (``python -m bench.engine_overhead --agents ...``) so its
peak RSS is its own: the Schelling city on the offline backend, every decision going through
prompt → answer → parse → log as it would against a server. Time is ``execute`` alone: the
interpreter's start and imports are not the engine's per-decision cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parents[1] / "runs" / "schelling_city.toml"


def run_case(
    agents: int,
    ticks: int,
    districts: int,
    cells: int,
    board: bool,
    out: Path,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Run one case in this process; returns its figures. With ``endpoint`` the decisions go
    through the openai-http path to that server instead of the offline backend."""
    import uvloop

    from agora.engine.runner import execute, plan_run

    overrides: dict[str, Any] = {
        "run.ticks": ticks,
        "run.out": str(out),
        "world.agents": agents,
        "world.districts": districts,
        "world.cells_per_district": cells,
        "policies.board.enabled": board,
        "inference.concurrency": 64,
    }
    if endpoint is not None:
        overrides.update(
            {
                "inference.backend": "openai-http",
                "inference.endpoints": [endpoint],
                "inference.model": "mock",
                "inference.concurrency": 256,
                "inference.cache": False,
            }
        )
    plan = plan_run(CONFIG, overrides, now=datetime.now(UTC))
    started = time.perf_counter()
    summary = uvloop.run(execute(plan))
    wall = time.perf_counter() - started
    log_bytes = (out / "log.jsonl").stat().st_size
    return {
        "agents": agents,
        "ticks": ticks,
        "districts": districts,
        "board": board,
        "decisions": summary.decisions,
        "wall_s": round(wall, 3),
        "decisions_per_s": round(summary.decisions / wall, 1),
        "backend": summary.backend,
        "valid": summary.valid,
        "peak_rss_mb": peak_rss_mb(),
        "log_mb": round(log_bytes / 1e6, 1),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set, from the kernel's high-water mark.

    ``getrusage``'s ``ru_maxrss`` survives ``exec`` on Linux, so a child started from a big
    parent would report the parent's size; ``VmHWM`` belongs to the new address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(
    agents: int,
    ticks: int,
    districts: int,
    cells: int = 50,
    board: bool = True,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Run one case in a fresh interpreter pinned to one thread of numpy."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="agora-bench-") as scratch:
        command = [
            sys.executable,
            "-m",
            "bench.engine_overhead",
            "--agents",
            str(agents),
            "--ticks",
            str(ticks),
            "--districts",
            str(districts),
            "--cells",
            str(cells),
            "--out",
            str(Path(scratch) / "run"),
            "--json",
        ]
        if not board:
            command.append("--no-board")
        if endpoint is not None:
            command += ["--endpoint", endpoint]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"engine overhead case failed: {result.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=225)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--districts", type=int, default=9)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--no-board", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--endpoint", help="an OpenAI-compatible server instead of offline")
    parser.add_argument("--json", action="store_true", help="run here and print one JSON line")
    args = parser.parse_args()
    if args.json:
        out = args.out or Path(tempfile.mkdtemp(prefix="agora-bench-")) / "run"
        figures = run_case(
            args.agents,
            args.ticks,
            args.districts,
            args.cells,
            not args.no_board,
            out,
            args.endpoint,
        )
        print(json.dumps(figures))
        return 0
    figures = measure(
        args.agents, args.ticks, args.districts, args.cells, not args.no_board, args.endpoint
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

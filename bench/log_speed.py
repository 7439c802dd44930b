"""Log speed (issue 6, measure 7): records written per second, ``load_run`` time, and the time
to replay to the last tick of a ~1M-record log.

The log is a real run's, made in this process first: the Schelling city with 10,000 residents in
9 districts of 2,223 cells, the board on, the offline backend, on uvloop, for as many ticks as
make decisions + likes + posts + ticks ≥ ``records`` (about 36,000 a tick once the board fills).
Then, in this same process and on that log:

- ``RunLogWriter`` on the log's own records, into a fresh log: ``append`` of Decisions (one
  write each), ``append_many`` of each Decision with the likes it gave (one write a decision, as
  a run writes them) and ``append_many`` of 100 Decisions a write; the tick-end fsync is left
  out, as a run does it in a background thread;
- ``engine.frames.load_run`` (the log as polars frames);
- replay to the last tick, as ``agora replay`` does it: ``read_run``, ``Replayer(logged)``, then
  ``advance_to(logged.last_tick)``, which rebuilds the world, the board and every agent's memory
  and checks every tick's state digest.

Collected garbage is cleared before each timing; with ``repeats`` above 1 each figure is the best
of that many (the machines are shared and noisy) and every try is kept in the result.

    python -m bench.log_speed                          # ~1M records, a markdown table
    python -m bench.log_speed --records 200000 --repeats 3
    python -m bench.log_speed --json                   # the figures as one JSON object
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

CONFIG = Path(__file__).resolve().parents[1] / "runs" / "schelling_city.toml"

WRITE_TARGET_PER_S = 200_000
TARGET_RECORDS = 1_000_000
LOAD_TARGET_S = 3.0
REPLAY_TARGET_S = 3.0
# Records a tick of the 10,000-resident city writes once the board has filled (10,000
# decisions, ~23,000 likes, ~3,000 posts), and what its first ticks write short of that (no
# likes before there are posts): 28 ticks make 990,153 records, 29 make about 1,026,000.
RECORDS_PER_TICK = 36_300
FIRST_TICKS_SHORT = 27_000
WRITE_SAMPLE = 200_000
BATCH = 100


def build_log(records: int, out: Path, *, agents: int = 10_000) -> dict[str, Any]:
    """Run the city in this process until its log holds about ``records`` records."""
    import uvloop

    from agora.engine.runner import execute, plan_run

    scale = agents / 10_000
    ticks = max(1, math.ceil((records + FIRST_TICKS_SHORT * scale) / (RECORDS_PER_TICK * scale)))
    overrides: dict[str, Any] = {
        "run.ticks": ticks,
        "run.out": str(out),
        "world.agents": agents,
        "world.districts": 9,
        # 2,223 cells for 10,000 residents: districts about half full, as in the paper's city.
        "world.cells_per_district": max(2, math.ceil(agents * 2223 / 10_000)),
        "policies.board.enabled": True,
        "inference.concurrency": 64,
    }
    plan = plan_run(CONFIG, overrides, now=datetime.now(UTC))
    started = time.perf_counter()
    summary = uvloop.run(execute(plan))
    wall = time.perf_counter() - started
    log = out / "log.jsonl"
    data = log.read_bytes()
    return {
        "agents": agents,
        "ticks": ticks,
        "decisions": summary.decisions,
        "records": data.count(b"\n"),
        "log_mb": round(len(data) / 1e6, 1),
        "build_s": round(wall, 3),
        "log": str(log),
    }


def measure_writes(log: Path, scratch: Path, count: int = WRITE_SAMPLE) -> dict[str, Any]:
    """Records/s of ``append`` and ``append_many`` for the log's own records, three ways.

    ``append``: one Decision a write; ``as_run``: each Decision with the likes it gave, one
    ``append_many`` a decision, as a run writes them; ``append_many``: 100 Decisions a write.
    """
    from agora.engine.log import RunLogWriter
    from agora.engine.record_kinds import RunRecords
    from agora.engine.records import Decision, LogRecord, RunHeader
    from agora.policies.message_board import Like

    lines = log.read_bytes().split(b"\n")
    header = msgspec.json.decode(lines[0], type=RunHeader)
    decode = RunRecords.of_header(header).decoder.decode
    decision_or_like = (b'{"kind":"decision"', b'{"kind":"like"')
    turns: list[list[LogRecord]] = []  # each decision with the likes logged after it
    for line in lines[1:]:
        if not line.startswith(decision_or_like):
            continue
        record = decode(line)
        if isinstance(record, Decision):
            if len(turns) == count:
                break
            turns.append([record])
        elif isinstance(record, Like) and turns:
            turns[-1].append(record)
    del lines
    if not turns:
        raise RuntimeError(f"{log}: no decision records to write")
    decisions = [turn[0] for turn in turns]

    # Each returns (records, writes).
    def one_by_one(writer: RunLogWriter) -> tuple[int, int]:
        for decision in decisions:
            writer.append(decision)
        return len(decisions), len(decisions)

    def as_run(writer: RunLogWriter) -> tuple[int, int]:
        for turn in turns:
            writer.append_many(turn)
        return sum(map(len, turns)), len(turns)

    def batched(writer: RunLogWriter) -> tuple[int, int]:
        for at in range(0, len(decisions), BATCH):
            writer.append_many(decisions[at : at + BATCH])
        return len(decisions), math.ceil(len(decisions) / BATCH)

    figures: dict[str, Any] = {}
    for name, write in (("append", one_by_one), ("as_run", as_run), ("append_many", batched)):
        path = scratch / f"{name}.jsonl"
        gc.collect()
        with RunLogWriter(path, header=header) as writer:
            started = time.perf_counter()
            records, writes = write(writer)
            seconds = time.perf_counter() - started
        written = path.stat().st_size
        path.unlink()
        figures[name] = {
            "records": records,
            "writes": writes,
            "s": round(seconds, 4),
            "per_s": round(records / seconds),
            "mb_per_s": round(written / 1e6 / seconds, 1),
        }
    return figures


def _best(tries: int, measure: Callable[[], dict[str, float]]) -> dict[str, Any]:
    runs = []
    for _ in range(tries):
        gc.collect()
        runs.append(measure())
    rounded = [{k: round(v, 3) for k, v in run.items()} for run in runs]
    return {**min(rounded, key=lambda run: run["total_s"]), "tries": rounded}


def measure_load_run(run_dir: Path) -> dict[str, float]:
    from agora.engine.frames import load_run

    started = time.perf_counter()
    frames = load_run(run_dir)
    seconds = time.perf_counter() - started
    rows = frames.decisions.height + frames.ticks.height
    rows += sum(frame.height for frame in frames.records.values())
    del frames
    return {"total_s": seconds, "rows": rows}


def measure_replay(run_dir: Path) -> dict[str, float]:
    from agora.engine.replay import Replayer, read_run

    started = time.perf_counter()
    logged = read_run(run_dir)
    read = time.perf_counter()
    replayer = Replayer(logged)
    built = time.perf_counter()
    replayer.advance_to(logged.last_tick)
    done = time.perf_counter()
    if replayer.tick != logged.last_tick:
        raise RuntimeError(f"replay stopped at tick {replayer.tick} of {logged.last_tick}")
    ticks = replayer.tick + 1
    del replayer, logged
    return {
        "read_run_s": read - started,
        "replayer_s": built - read,
        "advance_to_s": done - built,
        "total_s": done - started,
        "ticks": ticks,
    }


def run_log_speed(
    records: int = 1_000_000, *, repeats: int = 1, agents: int = 10_000, keep: Path | None = None
) -> dict[str, Any]:
    """Build a ~``records``-record log with a real run, then time writes, loads and replay.

    ``keep``: a directory to build the run in and leave behind (it must not hold a run yet).
    """
    scratch = Path(tempfile.mkdtemp(prefix="agora-log-speed-"))
    run_dir = keep if keep is not None else scratch / "run"
    try:
        build = build_log(records, run_dir, agents=agents)
        writes = measure_writes(Path(build["log"]), scratch)
        load = _best(repeats, lambda: measure_load_run(run_dir))
        replay = _best(repeats, lambda: measure_replay(run_dir))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result: dict[str, Any] = {
        "records": build["records"],
        "build": build,
        "writes": writes,
        "load_run": load,
        "replay": replay,
    }
    result["rows"] = _rows(result)
    return result


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    build, writes = result["build"], result["writes"]
    load, replay = result["load_run"], result["replay"]
    size = f"{build['records']:,} records, {build['log_mb']} MB"
    # The time targets are set for a 1M-record log; a smaller one gets figures, not verdicts.
    at_scale = build["records"] >= TARGET_RECORDS * 0.9
    rows: list[dict[str, Any]] = [
        {
            "subject": "log built by a real run (offline, board on)",
            "figure": f"{build['records'] / build['build_s']:,.0f} records/s",
            "notes": f"{size}: {build['agents']:,} agents × {build['ticks']} ticks "
            f"({build['decisions']:,} decisions) in {build['build_s']} s",
        }
    ]
    for name, what in (
        ("append", "`RunLogWriter.append` of Decision records (one a write)"),
        ("as_run", "`RunLogWriter.append_many`, each Decision with its likes (as a run writes)"),
        ("append_many", f"`RunLogWriter.append_many` of Decision records ({BATCH} a write)"),
    ):
        figures = writes[name]
        rows.append(
            {
                "subject": what,
                "figure": f"{figures['per_s']:,.0f} records/s",
                "target": f"≥ {WRITE_TARGET_PER_S:,}/s",
                "met": figures["per_s"] >= WRITE_TARGET_PER_S,
                "notes": f"{figures['records']:,} records in {figures['writes']:,} writes, "
                f"{figures['mb_per_s']} MB/s",
            }
        )
    rows.append(
        {
            "subject": "`load_run` (polars frames)",
            "figure": f"{load['total_s']:.2f} s",
            "target": f"≤ {LOAD_TARGET_S:g} s",
            "met": load["total_s"] <= LOAD_TARGET_S if at_scale else None,
            "notes": f"{size}; {int(load['rows']):,} rows",
        }
    )
    rows.append(
        {
            "subject": "replay to the last tick (`read_run` + `Replayer` + `advance_to`)",
            "figure": f"{replay['total_s']:.2f} s",
            "target": f"≤ {REPLAY_TARGET_S:g} s",
            "met": replay["total_s"] <= REPLAY_TARGET_S if at_scale else None,
            "notes": f"read_run {replay['read_run_s']:.2f} s, Replayer "
            f"{replay['replayer_s']:.2f} s, advance_to {replay['advance_to_s']:.2f} s "
            f"({int(replay['ticks'])} ticks, every digest checked)",
        }
    )
    return rows


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Log speed: {result['records']:,} records in one process",
        "",
        "| subject | figure | target | met | notes |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        met = {True: "yes", False: "**no**", None: ""}[row.get("met")]
        lines.append(
            f"| {row['subject']} | {row['figure']} | {row.get('target', '')} | {met} "
            f"| {row.get('notes', '')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.log_speed", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1, help="best of this many loads/replays")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build the run here and leave it")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = run_log_speed(args.records, repeats=args.repeats, agents=args.agents, keep=args.keep)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

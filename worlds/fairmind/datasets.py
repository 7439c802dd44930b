"""What ``agora fit`` fits: trials from a CSV, a run or a sweep, as named datasets.

A dataset is one population whose per-agent fits are averaged together in Tables 3/6 (the
paper's "Human", "GPT-4o", ...). Its trials are a long-format polars frame with the columns
``agent, round, p1_share, p2_share, cost, choice`` (choice 1 = PUNISH, 0 = ACCEPT) and, when the
source has them, the six affect columns.

- **A trials CSV**: those columns (any order; extra columns kept out of the fit). An optional
  ``dataset`` column splits the rows into datasets (else the file is one dataset named after
  it); agents are distinct per dataset. Every value is read as text and checked, so a bad cell
  is reported as ``FILE:LINE (agent, round): what is wrong; the fix`` (line 1 is the header).
  A CSV is what the user made, so any agent with too few rounds for a model stops the fit.
- **A run directory**: its ``fairmind_trial`` records, one dataset named after the run's model.
- **A sweep directory**: its completed runs; a dataset per model (per model/condition when the
  sweep has several conditions), agents named ``seed{S}/{agent}``.

From runs, a round an agent missed (no valid answer after its re-asks, or a provider error)
has no trial: it is left out of the likelihood and counted per agent in ``missed``, and an
agent left with too few rounds for a model is not fitted but listed in ``too_few`` with its
count. Nothing is dropped without being reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from agora.engine.config import ConfigError
from agora.engine.frames import RunFrames, load_run
from agora.engine.sweep import is_sweep_dir
from agora.engine.sweep_report import SweepRunData, load_sweep
from agora.worlds.fairmind.models import REQUIRED_COLUMNS, Trials, TrialsError
from agora.worlds.fairmind.world import AFFECT_COLUMNS

TRIAL_KIND: Final = "fairmind_trial"
DATASET_COLUMN: Final = "dataset"


@dataclass(frozen=True)
class Dataset:
    """One population's trials and what its source left out."""

    name: str
    trials: pl.DataFrame  # REQUIRED_COLUMNS (choice 0/1) + the affect columns when present
    source: str  # "csv", "offline" or the model that answered
    missed: dict[str, int] = field(default_factory=dict)  # agent → rounds without a trial
    too_few: dict[str, int] = field(default_factory=dict)  # agent → rounds, not fitted
    truth: dict[str, str] = field(default_factory=dict)  # agent → offline kind that played
    runs: tuple[str, ...] = ()  # the runs it was read from
    # Every played round, the too-short agents' included (None: ``trials`` is all of them):
    # the paper's measures count what was played, only the fits need enough rounds.
    played: pl.DataFrame | None = None

    @property
    def all_trials(self) -> pl.DataFrame:
        return self.trials if self.played is None else self.played

    @property
    def agents(self) -> int:
        return int(self.trials["agent"].n_unique()) if self.trials.height else 0

    def to_trials(self) -> Trials:
        return Trials.from_frame(self.trials)


def load_datasets(path: Path, min_rounds: int) -> tuple[list[Dataset], list[str]]:
    """The datasets at ``path`` (a CSV, a run or a sweep directory) and a line per run that a
    sweep left out. ``min_rounds``: an agent needs that many trials to be fitted."""
    if path.is_dir():
        if is_sweep_dir(path):
            return _from_sweep(path, min_rounds)
        if (path / "log.jsonl").is_file():
            return [from_run(path, load_run(path), min_rounds)], []
        raise ConfigError(
            f"{path}: neither a run (no log.jsonl) nor a sweep (no sweep.json); give a "
            "trials CSV, a run directory or a sweep directory"
        )
    if not path.is_file():
        raise ConfigError(f"{path}: no such file or directory; give a trials CSV or a run")
    return _from_csv(path, min_rounds), []


# ---- CSV -------------------------------------------------------------------------------------


def _from_csv(path: Path, min_rounds: int) -> list[Dataset]:
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a readable CSV ({first})") from None
    frame = frame.rename({name: name.strip() for name in frame.columns})
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise ConfigError(
            f"{path}: missing column {missing[0]!r}; a trials CSV needs the columns "
            f"{', '.join(REQUIRED_COLUMNS)} (choice 1 = PUNISH or 0 = ACCEPT)"
        )
    if frame.height == 0:
        raise ConfigError(f"{path}: no rows; give one row per (agent, round)")
    frame = frame.with_row_index("_line", offset=2)  # the header is line 1
    if DATASET_COLUMN in frame.columns:
        empty = frame.filter(pl.col(DATASET_COLUMN).is_null())
        if empty.height:
            raise ConfigError(
                f"{path}:{empty['_line'][0]}: dataset is empty; name every row's dataset "
                "or drop the column"
            )
        groups = [
            (str(key[0]), group)
            for key, group in frame.group_by(DATASET_COLUMN, maintain_order=True)
        ]
    else:
        groups = [(path.stem, frame)]
    affect = [name for name in AFFECT_COLUMNS if name in frame.columns]
    out = []
    for name, group in groups:
        lines = group["_line"].to_list()
        try:
            trials = Trials.from_frame(group)
        except TrialsError as exc:
            raise ConfigError(_at_line(str(exc), path, lines)) from None
        for a, agent in enumerate(trials.agents):
            have = int(trials.n_trials[a])
            if have < min_rounds:
                raise ConfigError(
                    f"{path}: agent {agent!r}"
                    + (f" of dataset {name!r}" if len(groups) > 1 else "")
                    + f" has {have} rounds; the fit needs at least {min_rounds} (the largest "
                    "model's k + 1, and 2 per cross-validation fold); drop the agent, give it "
                    "more rounds, or fit with fewer --folds"
                )
        table = pl.DataFrame(trials.to_columns()).with_columns(pl.col("agent").cast(pl.String))
        if affect:
            table = table.join(_affect(group, affect, path), on=["agent", "round"], how="left")
        out.append(Dataset(name=name, trials=table, source="csv"))
    return out


_ROW = re.compile(r"^trials row (\d+)")
_DUPLICATE = re.compile(r"duplicates row (\d+)")


def _at_line(message: str, path: Path, lines: Sequence[int]) -> str:
    """``Trials``' "trials row N ..." (N from 1 within the rows given) as ``FILE:LINE ...``."""
    message = _DUPLICATE.sub(lambda m: f"duplicates line {lines[int(m.group(1)) - 1]}", message)
    match = _ROW.match(message)
    if match:
        return f"{path}:{lines[int(match.group(1)) - 1]}{message[match.end() :]}"
    return f"{path}{message.removeprefix('trials')}"


def _affect(group: pl.DataFrame, columns: Sequence[str], path: Path) -> pl.DataFrame:
    """The affect columns as numbers in [−100, 100] (empty cells stay empty)."""
    values: dict[str, list[Any]] = {
        "agent": [str(v) for v in group["agent"].to_list()],
        "round": [int(float(v)) for v in group["round"].to_list()],
    }
    lines = group["_line"].to_list()
    for name in columns:
        cells: list[float | None] = []
        for line, cell in zip(lines, group[name].to_list(), strict=True):
            if cell is None or cell.strip() == "":
                cells.append(None)
                continue
            try:
                number = float(cell)
            except ValueError:
                number = float("nan")
            if not -100 <= number <= 100:
                raise ConfigError(
                    f"{path}:{line}: {name} is {cell!r}; affect ratings are numbers in "
                    "[-100, 100] (or empty)"
                )
            cells.append(number)
        values[name] = cells
    return pl.DataFrame(values, schema_overrides=dict.fromkeys(columns, pl.Float64))


# ---- runs and sweeps -------------------------------------------------------------------------


def _run_model(frames: RunFrames) -> str:
    header = frames.header
    if header.get("backend") == "offline":
        kind = header.get("world_info", {}).get("offline", {}).get("kind")
        return f"offline-{kind}" if kind else "offline"
    return str(header.get("model") or header.get("backend"))


def _from_sweep(path: Path, min_rounds: int) -> tuple[list[Dataset], list[str]]:
    _, runs, left_out = load_sweep(path)
    if not runs:
        raise ConfigError(f"{path}: the sweep has no completed run to fit; run `agora sweep`")
    return from_sweep_runs(runs, min_rounds), left_out


def from_sweep_runs(runs: Sequence[SweepRunData], min_rounds: int) -> list[Dataset]:
    """A dataset per model of a sweep's loaded runs (per model/condition when the runs have
    several conditions)."""
    several_conditions = len({run.condition for run in runs}) > 1
    names: list[str] = []
    grouped: dict[str, list[tuple[Path, RunFrames, str]]] = {}
    for run in runs:
        name = f"{run.model}/{run.condition}" if several_conditions else run.model
        if name not in grouped:
            names.append(name)
        grouped.setdefault(name, []).append((run.dir, run.frames, f"seed{run.seed}/"))
    return [_from_runs(name, grouped[name], min_rounds) for name in names]


def from_run(run_dir: Path, frames: RunFrames, min_rounds: int) -> Dataset:
    """One run's trials as a dataset named after its model."""
    return _from_runs(_run_model(frames), [(run_dir, frames, "")], min_rounds)


def _from_runs(name: str, runs: Sequence[tuple[Path, RunFrames, str]], min_rounds: int) -> Dataset:
    tables, missed, truth = [], {}, {}
    for run_dir, frames, prefix in runs:
        header = frames.header
        if TRIAL_KIND not in frames.records:  # the kinds its world declares (any format)
            # Any world playing FairMindSim's game logs its trials (ProSim's Study 2 does).
            raise ConfigError(
                f"{run_dir}: a {header.get('world')!r} run, without {TRIAL_KIND} records; "
                "agora fit reads runs of FairMindSim's game"
            )
        trials = frames.of(TRIAL_KIND)
        if trials.height:
            tables.append(
                trials.select(
                    (pl.lit(prefix) + pl.col("agent").cast(pl.String)).alias("agent"),
                    "round",
                    "p1_share",
                    "p2_share",
                    "cost",
                    (pl.col("choice") == "PUNISH").cast(pl.Int64).alias("choice"),
                    *[pl.col(c).cast(pl.Float64) for c in AFFECT_COLUMNS],
                )
            )
        decisions = frames.decisions
        if decisions.height:
            lost = decisions.filter(~pl.col("valid")).group_by("agent").len()
            for row in lost.iter_rows(named=True):
                missed[f"{prefix}{row['agent']}"] = int(row["len"])
        offline = header.get("world_info", {}).get("offline", {})
        if header.get("backend") == "offline":
            for agent in offline.get("agents", []):
                truth[f"{prefix}{agent['agent']}"] = str(agent["kind"])
    table = pl.concat(tables) if tables else _empty_trials()
    counts = dict(table.group_by("agent").len().iter_rows()) if table.height else {}
    too_few = {agent: int(n) for agent, n in counts.items() if n < min_rounds}
    # Agents that played no round at all are as unfittable as those with too few.
    for agent in missed:
        if agent not in counts:
            too_few[agent] = 0
    kept = table.filter(~pl.col("agent").is_in(list(too_few)))
    return Dataset(
        name=name,
        trials=kept,
        source=str(runs[0][1].header.get("model")),
        missed=dict(sorted(missed.items())),
        too_few=dict(sorted(too_few.items())),
        truth=truth,
        runs=tuple(str(run_dir) for run_dir, _, _ in runs),
        played=table,
    )


def _empty_trials() -> pl.DataFrame:
    schema: dict[str, Any] = {
        "agent": pl.String,
        "round": pl.Int64,
        "p1_share": pl.Int64,
        "p2_share": pl.Int64,
        "cost": pl.Int64,
        "choice": pl.Int64,
    }
    schema.update(dict.fromkeys(AFFECT_COLUMNS, pl.Float64))
    return pl.DataFrame(schema=schema)

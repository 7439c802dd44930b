"""The paper's measures (section 2.2) over trial rows: a polars frame with the columns of the
``fairmind_trial`` record (``agora.load_run(path).of("fairmind_trial")``), or any frame with
the ones a measure needs (``agent, p1_share, p2_share, cost, choice`` and the six affect
columns). ``choice`` is "PUNISH"/"ACCEPT" (any case) or 1/0.

- **punishment rate** (eq. 1): the share of unfair rounds (P1 > P2) in which the agent
  punished, pooled over the rows given (an agent type's rate: all its agents' unfair rounds);
- **action difference** (eq. 2): |rate − the human rate| (default 0.3506, the paper's);
- **composite emotional entropy** (eq. 3): for each of the six series (valence and arousal at
  appraisal, choice and feedback), the Shannon entropy in bits of its histogram over 20
  uniform bins on [−100, 100] (the last bin closed, so 100 counts), averaged over the six.
  Taken per agent over its rounds and then averaged over agents (``per_agent=True``, the
  default): the paper's human value (≈ 1.08 bits) is only reachable per person, since the
  pooled ratings of a cohort spread over far more bins. ``per_agent=False`` pools the rows;
- **punishment surface**: the punishment rate in each (inequity, cost) cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from agora.worlds.fairmind.brem import POT
from agora.worlds.fairmind.world import AFFECT_COLUMNS

HUMAN_PUNISH_RATE = 0.3506
BINS = 20
RANGE = (-100.0, 100.0)


def punished(trials: pl.DataFrame) -> pl.Series:
    """Each row's choice as 1 (PUNISH) or 0 (ACCEPT)."""
    choice = trials["choice"]
    if choice.dtype == pl.String:
        upper = choice.str.strip_chars().str.to_uppercase()
        bad = upper.filter(~upper.is_in(["PUNISH", "ACCEPT"]))
        if bad.len():
            raise ValueError(f"choice {bad[0]!r} is neither PUNISH nor ACCEPT")
        return (upper == "PUNISH").cast(pl.Int64).alias("punished")
    values = choice.cast(pl.Int64)
    if not values.is_in([0, 1]).all():
        raise ValueError("a numeric choice is 1 (PUNISH) or 0 (ACCEPT)")
    return values.alias("punished")


def unfair(trials: pl.DataFrame) -> pl.Series:
    return (trials["p1_share"] > trials["p2_share"]).alias("unfair")


def punishment_rate(trials: pl.DataFrame) -> float | None:
    """Eq. 1 over the unfair rounds of ``trials``; None when there are none."""
    mask = unfair(trials)
    n = int(mask.sum())
    if n == 0:
        return None
    return float(punished(trials).filter(mask).sum()) / n


def action_difference(trials: pl.DataFrame, human_rate: float = HUMAN_PUNISH_RATE) -> float | None:
    """Eq. 2: |R_punish − R_punish(human)|."""
    rate = punishment_rate(trials)
    return None if rate is None else abs(rate - human_rate)


def series_entropy(values: npt.ArrayLike, bins: int = BINS) -> float:
    """Shannon entropy (bits) of ``values`` binned into ``bins`` uniform bins on [−100, 100]."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return float("nan")
    counts, _ = np.histogram(np.clip(data, *RANGE), bins=bins, range=RANGE)
    p = counts[counts > 0] / data.size
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: one bin gives 0.0, not -0.0


def composite_entropy(
    trials: pl.DataFrame, columns: Sequence[str] = AFFECT_COLUMNS, bins: int = BINS
) -> float:
    """Eq. 3 for one set of rows: the mean of the series' entropies."""
    return float(np.mean([series_entropy(trials[c].to_numpy(), bins) for c in columns]))


def emotional_entropy(
    trials: pl.DataFrame,
    per_agent: bool = True,
    columns: Sequence[str] = AFFECT_COLUMNS,
    bins: int = BINS,
) -> float | None:
    """Eq. 3 for an agent type: per agent, then the mean over agents (or pooled)."""
    if trials.height == 0:
        return None
    if not per_agent:
        return composite_entropy(trials, columns, bins)
    values = [
        composite_entropy(group, columns, bins)
        for _, group in trials.group_by("agent", maintain_order=True)
    ]
    return float(np.mean(values))


def punishment_surface(trials: pl.DataFrame) -> pl.DataFrame:
    """The punishment rate per (inequity, cost) cell: ``p1_share, p2_share, inequity``
    (E = (P1 − P2)/30), ``cost``, ``n`` rounds, ``punished``, ``rate``, sorted."""
    frame = trials.select("p1_share", "p2_share", "cost").with_columns(punished(trials))
    return (
        frame.group_by("p1_share", "p2_share", "cost")
        .agg(pl.len().alias("n"), pl.col("punished").sum())
        .with_columns(
            ((pl.col("p1_share") - pl.col("p2_share")) / POT).alias("inequity"),
            (pl.col("punished") / pl.col("n")).alias("rate"),
        )
        .select("p1_share", "p2_share", "inequity", "cost", "n", "punished", "rate")
        .sort("inequity", "cost")
    )


def table2_row(
    trials: pl.DataFrame, human_rate: float = HUMAN_PUNISH_RATE
) -> dict[str, float | int | None]:
    """The Table-2 figures of one agent type: punishment rate, action difference, entropy."""
    return {
        "agents": trials["agent"].n_unique() if trials.height else 0,
        "trials": trials.height,
        "punishment_rate": punishment_rate(trials),
        "action_diff": action_difference(trials, human_rate),
        "entropy": emotional_entropy(trials),
    }

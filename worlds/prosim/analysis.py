"""ProSim's analyses, over the frames ``agora.load_run`` gives (one function per table).

- ``willingness_table``: Study 1's mean willingness per scenario × intervention with a t
  confidence interval, and each intervention's paired difference from no policy (the same
  agent, scenario by scenario; an agent's differences averaged first, so agents are the
  units);
- ``punishment_table``: Study 2's punishment rate per inequity (P1 − P2) × cost with Wilson
  intervals, and the emotional feedback (after − before: the feedback rating minus the
  appraisal rating, valence and arousal) per choice;
- ``contagion_curve``: Study 3's share affected, mean willingness and unfairness per day;
- ``mediation``: X → M → Y by two least-squares regressions (M ~ X gives a; Y ~ X + M gives
  b and the direct effect c'; Y ~ X the total c = c' + a·b), the indirect effect a·b with a
  percentile bootstrap CI that resamples clusters (agents), so an agent's days count once.
  Study 3 has two: ``policy_mediation``, the paper's, with X = the condition (1: the
  inequity run, 0: the same seed's run with no policy), M the unfairness rating and Y the
  willingness, over the agent-days of both runs from the policy's first day on (with the same
  seed the two runs share the graph and the personas, so the only difference is the policy,
  and agent k of both runs is one cluster: the pairs are resampled together); and
  ``contagion_mediation``, within the inequity run, with X = whether the agent was hurt that
  day (treated by the institution or told of refusals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from agora.engine.analysis.stats import critical_t, wilson_interval

Floats = npt.NDArray[np.float64]


class MeanCI(msgspec.Struct, frozen=True):
    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: Sequence[float] | Floats, confidence: float = 0.95) -> MeanCI:
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n == 1:
        return MeanCI(mean, math.nan, math.nan, 1)
    half = critical_t(confidence, n - 1) * float(data.std(ddof=1)) / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n)


def willingness_table(ratings: pl.DataFrame) -> pl.DataFrame:
    """One row per scenario × intervention: mean, CI, n."""
    rows = []
    keys = ratings.select("scenario", "intervention").unique(maintain_order=True)
    for scenario, intervention in keys.iter_rows():
        values = ratings.filter(
            (pl.col("scenario") == scenario) & (pl.col("intervention") == intervention)
        )["willingness"].to_numpy()
        ci = mean_ci(values)
        rows.append((scenario, intervention, ci.mean, ci.low, ci.high, ci.n))
    return pl.DataFrame(
        rows,
        schema=["scenario", "intervention", "mean", "low", "high", "n"],
        orient="row",
    )


def intervention_effects(ratings: pl.DataFrame) -> pl.DataFrame:
    """Each intervention against no policy: per agent, the mean over scenarios (and ticks) of
    (willingness under it − willingness with none on the same scenario and tick), then the
    mean over agents with a t CI."""
    if "none" not in set(ratings["intervention"].to_list()):
        return pl.DataFrame(schema=["intervention", "difference", "low", "high", "agents"])
    pair = ["agent", "scenario", *(["tick"] if "tick" in ratings.columns else [])]
    base = ratings.filter(pl.col("intervention") == "none").select(
        *pair, pl.col("willingness").alias("base")
    )
    rows = []
    for intervention in ratings["intervention"].unique(maintain_order=True).to_list():
        if intervention == "none":
            continue
        paired = (
            ratings.filter(pl.col("intervention") == intervention)
            .join(base, on=pair)
            .group_by("agent")
            .agg((pl.col("willingness") - pl.col("base")).mean().alias("d"))
        )
        ci = mean_ci(paired["d"].to_numpy())
        rows.append((intervention, ci.mean, ci.low, ci.high, ci.n))
    return pl.DataFrame(
        rows, schema=["intervention", "difference", "low", "high", "agents"], orient="row"
    )


def punishment_table(trials: pl.DataFrame) -> pl.DataFrame:
    """Punishment rate per inequity (P1 − P2) × cost, with a Wilson 95% interval."""
    grouped = (
        trials.with_columns(
            (pl.col("p1_share") - pl.col("p2_share")).alias("inequity"),
            (pl.col("choice") == "PUNISH").cast(pl.Int64).alias("punish"),
        )
        .group_by("inequity", "cost")
        .agg(pl.col("punish").sum().alias("punished"), pl.len().alias("n"))
        .sort("inequity", "cost")
    )
    intervals = [
        wilson_interval(int(k), int(n)) for k, n in grouped.select("punished", "n").iter_rows()
    ]
    return grouped.with_columns(
        pl.Series("rate", [i.estimate for i in intervals]),
        pl.Series("low", [i.low for i in intervals]),
        pl.Series("high", [i.high for i in intervals]),
    )


def emotional_feedback(trials: pl.DataFrame) -> pl.DataFrame:
    """After − before (feedback − appraisal), valence and arousal, per choice, with CIs."""
    rows = []
    for choice in ("ACCEPT", "PUNISH"):
        chosen = trials.filter(pl.col("choice") == choice)
        for dim in ("valence", "arousal"):
            diff = (chosen[f"feedback_{dim}"] - chosen[f"appraisal_{dim}"]).to_numpy()
            ci = mean_ci(diff)
            rows.append((choice, dim, ci.mean, ci.low, ci.high, ci.n))
    return pl.DataFrame(
        rows, schema=["choice", "dimension", "mean", "low", "high", "n"], orient="row"
    )


def contagion_curve(days: pl.DataFrame, changes: pl.DataFrame, agents: int) -> pl.DataFrame:
    """Per day (tick): the share affected (seeds included) at its end, from the state
    changes (an affected agent that missed the day still counts), and the mean ratings of
    those who answered."""
    if days.is_empty():
        return pl.DataFrame(
            schema=[
                "tick",
                "affected",
                "mean_willingness",
                "mean_unfairness",
                "answered",
                "affected_share",
            ]
        )
    changed = sorted(changes["tick"].to_list()) if not changes.is_empty() else []
    curve = (
        days.group_by("tick")
        .agg(
            pl.col("willingness").mean().alias("mean_willingness"),
            pl.col("unfairness").mean().alias("mean_unfairness"),
            pl.len().alias("answered"),
        )
        .sort("tick")
    )
    affected = [sum(1 for t in changed if t <= tick) for tick in curve["tick"].to_list()]
    return curve.select(
        "tick",
        pl.Series("affected", affected, dtype=pl.Int64),
        "mean_willingness",
        "mean_unfairness",
        "answered",
        (pl.Series("affected", affected, dtype=pl.Float64) / agents).alias("affected_share"),
    )


class Mediation(msgspec.Struct, frozen=True):
    a: float  # X → M
    b: float  # M → Y, given X
    direct: float  # c': X → Y, given M
    total: float  # c: X → Y
    indirect: float  # a·b
    low: float
    high: float
    confidence: float
    resamples: int
    rows: int
    clusters: int

    @property
    def proportion_mediated(self) -> float:
        return self.indirect / self.total if self.total else math.nan


def _paths(x: Floats, m: Floats, y: Floats) -> tuple[float, float, float, float]:
    ones = np.ones_like(x)
    a = float(np.linalg.lstsq(np.column_stack([ones, x]), m, rcond=None)[0][1])
    _, direct, b = np.linalg.lstsq(np.column_stack([ones, x, m]), y, rcond=None)[0]
    total = float(np.linalg.lstsq(np.column_stack([ones, x]), y, rcond=None)[0][1])
    return a, float(b), float(direct), total


def mediation(
    x: Sequence[float] | Floats,
    m: Sequence[float] | Floats,
    y: Sequence[float] | Floats,
    clusters: Sequence[int] | npt.NDArray[np.int64],
    rng: np.random.Generator,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> Mediation:
    """The product-of-coefficients indirect effect with a cluster bootstrap CI. Raises
    ``ValueError`` when X or M does not vary (nothing to estimate)."""
    xs, ms, ys = (np.asarray(v, dtype=float) for v in (x, m, y))
    groups = np.asarray(clusters)
    if not len(xs) == len(ms) == len(ys) == len(groups):
        raise ValueError("x, m, y and clusters differ in length")
    if len(xs) < 3 or np.ptp(xs) == 0 or np.ptp(ms) == 0:
        raise ValueError("X or M does not vary: no mediation to estimate")
    a, b, direct, total = _paths(xs, ms, ys)
    names, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(names))]
    draws: list[float] = []
    for _ in range(resamples):
        picked = rng.integers(len(members), size=len(members))
        rows = np.concatenate([members[k] for k in picked])
        bx, bm = xs[rows], ms[rows]
        if np.ptp(bx) == 0 or np.ptp(bm) == 0:
            continue  # a resample without variation says nothing; it is skipped, not zeroed
        ba, bb, _, _ = _paths(bx, bm, ys[rows])
        draws.append(ba * bb)
    tail = (1.0 - confidence) / 2.0
    low, high = (
        (float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail)))
        if draws
        else (math.nan, math.nan)
    )
    return Mediation(
        a, b, direct, total, a * b, low, high, confidence, len(draws), len(xs), len(members)
    )


def policy_mediation(
    policy_days: pl.DataFrame,
    null_days: pl.DataFrame,
    rng: np.random.Generator,
    resamples: int = 1000,
    from_tick: int = 0,
) -> Mediation:
    """Study 3's mediation across conditions: policy (1) or none (0) → unfairness →
    willingness, over the agent-days at ``from_tick`` and later (the days the policy acts)."""
    both = [d.filter(pl.col("tick") >= from_tick) for d in (policy_days, null_days)]
    x = np.concatenate([np.full(len(d), float(k == 0)) for k, d in enumerate(both)])
    m = np.concatenate([d["unfairness"].cast(pl.Float64).to_numpy() for d in both])
    y = np.concatenate([d["willingness"].cast(pl.Float64).to_numpy() for d in both])
    # Agent k of both runs is one cluster: the same persona at the same place on the graph,
    # so a resample keeps the pairs together.
    clusters = np.concatenate([d["agent"].to_numpy().astype(np.int64) for d in both])
    return mediation(x, m, y, clusters, rng, resamples)


def contagion_mediation(
    days: pl.DataFrame, rng: np.random.Generator, resamples: int = 1000
) -> Mediation:
    """Study 3's mediation over agent-days: hurt (treated or told) → unfairness → willingness."""
    hurt = ((days["exposures"] > 0) | days["treated"]).cast(pl.Float64).to_numpy()
    return mediation(
        hurt,
        days["unfairness"].cast(pl.Float64).to_numpy(),
        days["willingness"].cast(pl.Float64).to_numpy(),
        days["agent"].to_numpy(),
        rng,
        resamples,
    )

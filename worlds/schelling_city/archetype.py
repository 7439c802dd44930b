"""The archetype verdict per model: Altruistic Optimizer, Adaptive Egoist, or undetermined.

The study found two archetypes (``../shared/specs/schelling_city.md``). *Altruistic Optimizers*
reach the optimum with or without the message board (PoA 1.0, Gini 0.0); *Adaptive Egoists*
leave the city short of it without the board (PoA about 0.86, Gini above 0.21) and their
altruistic acts rise markedly with it (one model: 0.3 % → 2.7 % of decisions).

The verdict reads the runs of one model, board on and off, each given as its altruistic acts,
its valid decisions, and its PoA and Gini at equilibrium (the mean over its last ticks):

- **Altruistic Optimizer** when the mean PoA is at least ``OPTIMIZER_MIN_POA`` (0.95) in *both*
  conditions and the runs without the board hold at least ``OPTIMIZER_MIN_ACTS`` (1) altruistic
  act each on average. The PoA bar sits between the study's 0.86 and 1.0. The acts bar makes
  sure agents paid for the optimum with their own utility at all, rather than finding it
  already there. It counts acts, not a rate: once the city is settled no altruistic act exists,
  so a population that reaches the optimum in a few ticks would show a rate that shrinks with
  every tick the run goes on, and the verdict would flip with the run's length.
- **Adaptive Egoist** when the mean PoA without the board is below ``EGOIST_MAX_POA`` (0.95) and
  the board raises the altruistic-act rate significantly: a positive effect with a two-sided
  p-value below ``SIGNIFICANCE`` (0.05) by the cluster-robust logistic test (seeds as clusters:
  a run's decisions share its history, and the runs of one seed, with and without the board,
  share their starting city; its Wald statistic referred to Student's t with
  G − 1 degrees of freedom, because an experiment has a handful of seeds per condition and the
  normal reference would overstate significance) when it is estimable, else by the
  two-proportion z-test, which treats decisions as independent and is optimistic.
- **undetermined** otherwise, with the reason: a condition without runs, a city at the optimum
  with hardly any altruism, a city short of it whose altruism the board does not raise, or one
  that reaches the optimum only with the board. A model whose altruists overshoot together (at
  activation 1.0 rule altruists end at PoA 0.795) lands here too, on purpose: the verdict does
  not call a model an optimizer when the city did not reach the optimum.

Gini is reported beside PoA but does not enter the verdict: in this model it measures the same
crowding that PoA does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import polars as pl

from agora.engine.analysis.stats import (
    ClusterLogit,
    Proportion,
    ProportionDifference,
    cluster_logit,
    compare_proportions,
    wilson_interval,
)
from agora.engine.frames import RunFrames

OPTIMIZER_MIN_POA = 0.95
OPTIMIZER_MIN_ACTS = 1.0
EGOIST_MAX_POA = 0.95
SIGNIFICANCE = 0.05
# How many of a run's last ticks make its equilibrium.
EQUILIBRIUM_TICKS = 10

Verdict = Literal["Altruistic Optimizer", "Adaptive Egoist", "undetermined"]


class Thresholds(msgspec.Struct, frozen=True):
    optimizer_min_poa: float = OPTIMIZER_MIN_POA
    optimizer_min_acts: float = OPTIMIZER_MIN_ACTS
    egoist_max_poa: float = EGOIST_MAX_POA
    significance: float = SIGNIFICANCE
    confidence: float = 0.95


class RunActs(msgspec.Struct, frozen=True):
    """One run, reduced to what the verdict reads."""

    model: str
    board: bool
    seed: int
    altruistic: int
    decisions: int
    poa: float
    gini: float
    run_id: str = ""


class ConditionSummary(msgspec.Struct, frozen=True):
    board: bool
    runs: int
    seeds: tuple[int, ...]
    altruistic: int
    decisions: int
    rate: Proportion
    # Means over runs, each run weighted equally.
    poa: float
    gini: float


class ArchetypeVerdict(msgspec.Struct, frozen=True):
    model: str
    verdict: Verdict
    reason: str
    without_board: ConditionSummary | None
    with_board: ConditionSummary | None
    # Rate with the board minus rate without it.
    difference: ProportionDifference | None = None
    cluster_test: ClusterLogit | None = None
    decided_by: Literal["cluster", "two-proportion"] | None = None
    p_value: float | None = None
    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)


def archetype_verdicts(
    runs: Sequence[RunActs], thresholds: Thresholds | None = None
) -> tuple[ArchetypeVerdict, ...]:
    """One verdict per model, in order of model name."""
    models = sorted({run.model for run in runs})
    return tuple(
        archetype_verdict(model, [r for r in runs if r.model == model], thresholds)
        for model in models
    )


def archetype_verdict(
    model: str, runs: Sequence[RunActs], thresholds: Thresholds | None = None
) -> ArchetypeVerdict:
    limits = thresholds or Thresholds()
    if any(run.model != model for run in runs):
        raise ValueError(f"every run must be of model {model!r}")
    without = _summary([r for r in runs if not r.board], False, limits)
    with_ = _summary([r for r in runs if r.board], True, limits)

    def undetermined(reason: str, **tests: Any) -> ArchetypeVerdict:
        return ArchetypeVerdict(
            model, "undetermined", reason, without, with_, thresholds=limits, **tests
        )

    missing = [
        name
        for name, summary in (("without", without), ("with", with_))
        if summary is None or summary.decisions == 0
    ]
    if missing:
        which = " and ".join(missing)
        return undetermined(f"no valid decisions {which} the board: both conditions are needed")
    assert without is not None
    assert with_ is not None
    difference = compare_proportions(
        with_.altruistic,
        with_.decisions,
        without.altruistic,
        without.decisions,
        limits.confidence,
    )
    board_runs = [r for r in runs if r.decisions > 0]
    # Seeds are the clusters: the runs of one seed, board or not, share their starting city.
    cluster = cluster_logit(
        [r.altruistic for r in board_runs],
        [r.decisions for r in board_runs],
        [r.board for r in board_runs],
        clusters=[r.seed for r in board_runs],
        confidence=limits.confidence,
    )
    if cluster.estimable:
        decided_by: Literal["cluster", "two-proportion"] = "cluster"
        effect, p_value = cluster.log_odds_ratio, cluster.p_value_t
    else:
        decided_by = "two-proportion"
        effect, p_value = difference.difference, difference.p_value
    tests: dict[str, Any] = {
        "difference": difference,
        "cluster_test": cluster,
        "decided_by": decided_by,
        "p_value": p_value,
    }
    raised = (
        effect is not None and effect > 0 and p_value is not None and p_value < limits.significance
    )
    rate_without = without.rate.estimate or 0.0
    acts_without = without.altruistic / max(1, without.runs)
    poa_text = f"mean PoA {without.poa:.3f} without and {with_.poa:.3f} with the board"
    test_text = _test_text(difference, p_value, decided_by, cluster)

    optimum_both = min(without.poa, with_.poa) >= limits.optimizer_min_poa
    if optimum_both and acts_without >= limits.optimizer_min_acts:
        reason = (
            f"{poa_text} (both ≥ {limits.optimizer_min_poa:g}); {acts_without:.1f} altruistic "
            f"acts per run without the board (≥ {limits.optimizer_min_acts:g}; "
            f"{_percent(rate_without)} of decisions)"
        )
        return ArchetypeVerdict(
            model, "Altruistic Optimizer", reason, without, with_, thresholds=limits, **tests
        )
    if without.poa < limits.egoist_max_poa and raised:
        reason = (
            f"mean PoA {without.poa:.3f} without the board (< {limits.egoist_max_poa:g}); "
            f"the board raises altruistic acts: {test_text}"
        )
        return ArchetypeVerdict(
            model, "Adaptive Egoist", reason, without, with_, thresholds=limits, **tests
        )
    if optimum_both:
        reason = (
            f"{poa_text} reach the optimum, but runs without the board hold "
            f"{acts_without:.1f} altruistic acts each (< {limits.optimizer_min_acts:g}): the "
            "optimum was not reached by altruism"
        )
    elif without.poa >= limits.egoist_max_poa:
        reason = (
            f"{poa_text}: the optimum is reached without the board but not with it "
            f"(< {limits.optimizer_min_poa:g}), which neither archetype does"
        )
    else:
        reason = (
            f"mean PoA {without.poa:.3f} without the board (< {limits.egoist_max_poa:g}), but "
            f"the board does not raise altruistic acts significantly: {test_text}"
        )
    return undetermined(reason, **tests)


def _summary(runs: Sequence[RunActs], board: bool, limits: Thresholds) -> ConditionSummary | None:
    if not runs:
        return None
    altruistic = sum(r.altruistic for r in runs)
    decisions = sum(r.decisions for r in runs)
    return ConditionSummary(
        board=board,
        runs=len(runs),
        seeds=tuple(sorted(r.seed for r in runs)),
        altruistic=altruistic,
        decisions=decisions,
        rate=wilson_interval(altruistic, decisions, limits.confidence),
        poa=sum(r.poa for r in runs) / len(runs),
        gini=sum(r.gini for r in runs) / len(runs),
    )


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def _test_text(
    difference: ProportionDifference,
    p_value: float | None,
    decided_by: str,
    cluster: ClusterLogit,
) -> str:
    first, second = difference.first.estimate or 0.0, difference.second.estimate or 0.0
    change = f"{_percent(second)} → {_percent(first)} of decisions"
    p_text = "p not computable" if p_value is None else f"p = {p_value:.3g}"
    if decided_by == "cluster":
        return (
            f"{change}, odds ratio {cluster.odds_ratio:.3g}, {p_text} "
            f"(cluster-robust logit with {cluster.clusters} seeds as clusters, "
            f"t with {cluster.df} df)"
        )
    why = f"; the cluster test is not estimable: {cluster.reason}" if cluster.reason else ""
    return f"{change}, {p_text} (two-proportion z-test{why})"


def run_acts(
    frames: RunFrames,
    *,
    last_ticks: int = EQUILIBRIUM_TICKS,
    model: str | None = None,
    board: bool | None = None,
) -> RunActs:
    """A run's ``RunActs`` from its log: valid decisions and altruistic acts over the whole run,
    PoA and Gini as the mean of the last ``last_ticks`` closed ticks. ``model`` defaults to the
    header's model (``offline`` for the offline backend: name the mix instead when comparing
    offline runs); ``board`` to whether a message-board policy is enabled in the config."""
    if last_ticks < 1:
        raise ValueError("last_ticks must be at least 1")
    header = frames.header
    if frames.ticks.is_empty():
        raise ValueError(f"run {header.get('run_id', '?')}: no closed tick to read PoA from")
    ticks = frames.ticks.sort("tick").tail(last_ticks)
    metrics = ticks.get_column("metrics").struct
    poa = float(metrics.field("poa").mean())  # type: ignore[arg-type]
    gini = float(metrics.field("gini").mean())  # type: ignore[arg-type]
    decisions, altruistic = 0, 0
    if not frames.decisions.is_empty():
        valid = frames.decisions.filter(pl.col("valid"))
        if not valid.is_empty():
            acts = valid.get_column("info").struct.field("act")
            decisions = int(acts.is_not_null().sum())
            altruistic = int((acts == "altruistic").sum())
    return RunActs(
        model=model if model is not None else str(header.get("model", "?")),
        board=_board_enabled(header) if board is None else board,
        seed=int(header.get("seed", 0)),
        altruistic=altruistic,
        decisions=decisions,
        poa=poa,
        gini=gini,
        run_id=str(header.get("run_id", "")),
    )


def _board_enabled(header: dict[str, Any]) -> bool:
    policies = header.get("config", {}).get("policies", {}) or {}
    return any(
        isinstance(section, dict)
        and section.get("kind") == "message_board"
        and section.get("enabled", True)
        for section in policies.values()
    )

"""Simulating agents from known parameters, and recovering parameters and models from them.

The simulator is the likelihood run forwards: for each round j it scores the rounds so far with
the model's own logit function (which is causal: φ_j depends on choices before j only), draws
y_j ~ Bernoulli(σ(φ_j)) for every agent at once, and goes on. So simulated data follow exactly
the model that is fitted, earnings, z-scores, beliefs and Q-values included.

Parameter recovery draws true parameters from ``GENERATING`` (uniform boxes inside the fitter's
bounds, set once before any fit was run and not tuned to the fitter since), simulates every
agent on one schedule, refits, and reports Pearson's r of true against fitted per parameter,
and Spearman's ρ, which the agents whose β1 or C goes to a bound (near-separable choices)
cannot dominate. Model recovery simulates agents from each model and counts which model AIC
picks for each.

What these show on the spec's design (measured; see the fit summary): BREM's parameters are
weakly identified from 60 binary choices, and more rounds help β1 and η but not β2 or C —
z(R_{j−1}) of a cumulative, steadily growing R tends to a constant (√3 for linear growth), so
β2·z and C become one intercept. For the same reason No-Pref is close to Rational.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from agora.worlds.fairmind.brem import sigmoid
from agora.worlds.fairmind.fitting import (
    DEFAULT_CANDIDATES,
    DEFAULT_RESTARTS,
    best_by_aic,
    fit,
    fit_rows,
)
from agora.worlds.fairmind.models import (
    MODELS,
    Floats,
    Model,
    Trials,
)
from agora.worlds.fairmind.schedule import default_schedule

# The boxes true parameters are drawn from, per model (uniform, independent).
GENERATING: Final[Mapping[str, tuple[tuple[float, float], ...]]] = {
    "BREM": ((0.0, 8.0), (-2.0, 2.0), (0.0, 5.0), (0.0, 1.0)),
    "BREM-NoUpdate": ((0.0, 8.0), (-2.0, 2.0), (0.0, 5.0)),
    "BREM-NoPref": ((-2.0, 2.0), (-2.0, 2.0), (0.0, 1.0)),
    "Rational": ((0.02, 0.5),),
    "IA": ((0.05, 0.6), (0.2, 3.0)),
    "RRM": ((0.05, 0.9), (0.1, 1.5), (-2.0, 2.0)),
}


@dataclass(frozen=True, eq=False)
class ScheduleArrays:
    """The rounds every agent plays, in order: Player 1's and Player 2's shares and the cost."""

    p1: Floats
    p2: Floats
    cost: Floats

    def __post_init__(self) -> None:
        if not (self.p1.shape == self.p2.shape == self.cost.shape) or self.p1.ndim != 1:
            raise ValueError("a schedule is three 1-D arrays of one length")

    @classmethod
    def of(cls, p1: npt.ArrayLike, p2: npt.ArrayLike, cost: npt.ArrayLike) -> ScheduleArrays:
        return cls(
            np.asarray(p1, dtype=float), np.asarray(p2, dtype=float), np.asarray(cost, dtype=float)
        )

    @classmethod
    def from_rounds(cls, rounds: Sequence[Any]) -> ScheduleArrays:
        """From split records with ``p1_share``, ``p2_share`` and ``cost`` (the world's
        ``schedule.Schedule.rounds``)."""
        return cls.of(
            [r.p1_share for r in rounds], [r.p2_share for r in rounds], [r.cost for r in rounds]
        )

    @property
    def rounds(self) -> int:
        return int(self.p1.size)

    def tiled(self, rounds: int) -> ScheduleArrays:
        """The schedule repeated (and cut) to ``rounds`` rounds: longer runs of one design."""
        reps = -(-rounds // self.rounds)
        return ScheduleArrays(
            np.tile(self.p1, reps)[:rounds],
            np.tile(self.p2, reps)[:rounds],
            np.tile(self.cost, reps)[:rounds],
        )


def spec_schedule(rng: np.random.Generator) -> ScheduleArrays:
    """The world's default design (``schedule.default_schedule``: 54 unfair rounds and 6 fair
    ones) in an order of its own, drawn from ``rng``: recovery on other orders of one design."""
    return ScheduleArrays.from_rounds(default_schedule(int(rng.integers(2**31))).rounds)


def simulate(
    model: Model,
    theta: npt.ArrayLike,
    schedule: ScheduleArrays,
    rng: np.random.Generator,
    *,
    uniforms: npt.ArrayLike | None = None,
) -> Trials:
    """One agent per row of ``theta`` (A, k), all on ``schedule``. ``uniforms`` (A, T) fixes
    the draws (y_j = 1 when u_j < P_j); otherwise they come from ``rng``."""
    values = np.atleast_2d(np.asarray(theta, dtype=float))
    n, t = values.shape[0], schedule.rounds
    u = rng.random((n, t)) if uniforms is None else np.asarray(uniforms, dtype=float)
    trials = Trials.from_schedule(schedule.p1, schedule.p2, schedule.cost, np.zeros((n, t)))
    choice = np.zeros((n, t))
    for j in range(t):
        so_far = trials.with_choices(choice).head(j + 1)
        p_j = sigmoid(model.logits(values, so_far)[:, j])
        choice[:, j] = (u[:, j] < p_j).astype(float)
    return trials.with_choices(choice)


def sample_parameters(model: Model, n: int, rng: np.random.Generator) -> Floats:
    """``n`` true parameter rows from ``GENERATING[model.name]``."""
    box = np.asarray(GENERATING[model.name], dtype=float)
    return np.asarray(box[:, 0] + rng.random((n, model.k)) * (box[:, 1] - box[:, 0]), dtype=float)


# ---- parameter recovery --------------------------------------------------------------------


class ParameterRecovery(msgspec.Struct, frozen=True):
    """True vs fitted parameters of agents simulated from one model on one schedule."""

    model: str
    rounds: int
    agents: int
    r: dict[str, float]  # Pearson's r per estimated parameter (NaN when one side is constant)
    rho: dict[str, float]  # Spearman's rank correlation, robust to fits on a bound
    true: dict[str, list[float]]
    fitted: dict[str, list[float]]
    loglik_true: list[float]
    loglik_fitted: list[float]

    @property
    def at_least_true(self) -> float:
        """Share of agents whose fitted ln L is ≥ ln L at the true parameters (− 1e-6)."""
        gaps = np.asarray(self.loglik_fitted) - np.asarray(self.loglik_true)
        return float(np.mean(gaps >= -1e-6))


def pearson(x: Sequence[float] | Floats, y: Sequence[float] | Floats) -> float:
    """Pearson's r; NaN when either side is constant or there are fewer than 2 values."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[float] | Floats, y: Sequence[float] | Floats) -> float:
    """Spearman's ρ: Pearson's r of the ranks (ties share their mean rank)."""
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))


def _ranks(values: Floats) -> Floats:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size, dtype=float)
    uniques, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=uniques.size)
    counts = np.bincount(inverse, minlength=uniques.size)
    return np.asarray((sums / counts)[inverse], dtype=float)


def parameter_recovery(
    model: Model,
    schedule: ScheduleArrays,
    agents: int,
    rng: np.random.Generator,
    *,
    theta: npt.ArrayLike | None = None,
    restarts: int = DEFAULT_RESTARTS,
    candidates: int = DEFAULT_CANDIDATES,
) -> ParameterRecovery:
    """Simulate ``agents`` agents from ``model`` (true parameters from ``theta`` or drawn from
    ``GENERATING``), refit each, and correlate true with fitted per estimated parameter."""
    true = (
        sample_parameters(model, agents, rng)
        if theta is None
        else np.atleast_2d(np.asarray(theta, dtype=float))
    )
    data = simulate(model, true, schedule, rng)
    fitted, nll, _ = fit_rows(model, data, rng, restarts=restarts, candidates=candidates)
    ll_fit = -nll
    ll_true = model.loglik(true, data)
    names = [model.params[i] for i in model.free]
    cols = {name: model.params.index(name) for name in names}
    return ParameterRecovery(
        model=model.name,
        rounds=schedule.rounds,
        agents=int(true.shape[0]),
        r={name: pearson(true[:, i], fitted[:, i]) for name, i in cols.items()},
        rho={name: spearman(true[:, i], fitted[:, i]) for name, i in cols.items()},
        true={name: [float(v) for v in true[:, i]] for name, i in cols.items()},
        fitted={name: [float(v) for v in fitted[:, i]] for name, i in cols.items()},
        loglik_true=[float(v) for v in ll_true],
        loglik_fitted=[float(v) for v in ll_fit],
    )


# ---- model recovery ------------------------------------------------------------------------


class ModelRecovery(msgspec.Struct, frozen=True):
    """Rows: the generating model; columns: the model AIC picks; cells: agent counts."""

    models: list[str]
    rounds: int
    agents_per_model: int
    counts: list[list[int]]

    def share(self, generating: str, picked: str) -> float:
        i, j = self.models.index(generating), self.models.index(picked)
        return self.counts[i][j] / max(sum(self.counts[i]), 1)

    def recovered(self, model: str) -> float:
        """Share of ``model``'s simulated agents for which AIC picks ``model``."""
        return self.share(model, model)


def model_recovery(
    schedule: ScheduleArrays,
    agents_per_model: int,
    rng: np.random.Generator,
    *,
    models: Sequence[Model] = MODELS,
    restarts: int = DEFAULT_RESTARTS,
    candidates: int = DEFAULT_CANDIDATES,
) -> ModelRecovery:
    """Simulate ``agents_per_model`` agents from each model, fit every model to each, and count
    which model has the lowest AIC."""
    names = [model.name for model in models]
    counts = [[0] * len(models) for _ in models]
    for i, model in enumerate(models):
        true = sample_parameters(model, agents_per_model, rng)
        data = simulate(model, true, schedule, rng)
        fits = fit(data, models, rng=rng, restarts=restarts, candidates=candidates)
        for picked in best_by_aic(fits).values():
            counts[i][names.index(picked)] += 1
    return ModelRecovery(
        models=names, rounds=schedule.rounds, agents_per_model=agents_per_model, counts=counts
    )

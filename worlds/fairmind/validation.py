"""Table 4: k-fold cross-validation and a permutation test of the per-agent fits.

Cross-validation (generalisation): each agent's trials are split at random (seeded) into
``folds`` folds; for each fold the model is fitted on the other folds' trials and scored on
the held-out ones. The models are sequential (belief, earnings z, Q-values), so a held-out
trial is still *played*: the recursion runs over every observed choice and only the
likelihood (and accuracy) leaves the held-out trials out. An agent's train and test accuracy
are the means over its folds; the paired t-test (``scipy.stats.ttest_rel``) compares them over
agents. When every agent's train and test accuracy are equal the test is reported as t = 0,
p = 1 (scipy would give NaN).

Permutation test (validity): each agent's choices are shuffled among its own trials (the
earnings, z-scores and rewards then follow the shuffled choices, as for any data) and the
model is refitted with the same optimiser settings, ``permutations`` times. The statistic is
the log-likelihood summed over agents; p = (1 + #{permutations with ln L ≥ the real one}) /
(1 + permutations), where "≥" allows ``TIE`` (per agent) for optimiser noise. Per-agent
p-values use each agent's own ln L the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from agora.worlds.fairmind.fitting import (
    DEFAULT_CANDIDATES,
    DEFAULT_RESTARTS,
    fit_rows,
    require_trials,
)
from agora.worlds.fairmind.models import MODELS, Floats, Model, Trials

TIE = 1e-6  # log-likelihoods closer than this count as equal


class CrossValidation(msgspec.Struct, frozen=True):
    """One model's k-fold cross-validation over agents (Table 4, upper half)."""

    model: str
    folds: int
    agents: int
    train_accuracy: list[float]  # per agent, mean over its folds
    test_accuracy: list[float]
    train_mean: float
    train_sd: float
    test_mean: float
    test_sd: float
    t: float | None  # paired t-test of train vs test accuracy over agents; None: < 2 agents
    p: float | None


class PermutationTest(msgspec.Struct, frozen=True):
    """One model's permutation test (Table 4, lower half)."""

    model: str
    permutations: int
    agents: int
    real_loglik: float  # summed over agents
    real_accuracy: float  # mean over agents
    perm_loglik: list[float]  # per permutation, summed over agents
    perm_accuracy: list[float]  # per permutation, mean over agents
    p_value: float
    agent_p_values: list[float]

    @property
    def perm_accuracy_mean(self) -> float:
        return float(np.mean(self.perm_accuracy))

    @property
    def perm_loglik_mean(self) -> float:
        return float(np.mean(self.perm_loglik))


def _usable(theta: Floats) -> Floats:
    return np.where(np.isnan(theta), 0.0, theta)


def fold_masks(
    trials: Trials, folds: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(train, test) masks of shape (agents × folds, T), agent-major: row a·folds + f holds
    agent a's fold f. Each agent's trials are shuffled and cut into ``folds`` near-equal
    parts."""
    rows, width = trials.n_agents * folds, trials.mask.shape[1]
    test = np.zeros((rows, width), dtype=bool)
    for a in range(trials.n_agents):
        order = rng.permutation(int(trials.n_trials[a]))
        for f, part in enumerate(np.array_split(order, folds)):
            test[a * folds + f, part] = True
    real = np.repeat(trials.mask, folds, axis=0)
    return real & ~test, test


def _paired_t(train: Floats, test: Floats) -> tuple[float | None, float | None]:
    if train.size < 2:
        return None, None
    diff = train - test
    # Equal up to rounding (a model that predicts one choice everywhere, on equal folds, has
    # the same mean accuracy on both sides): scipy would test the rounding error.
    if np.all(np.abs(diff) <= 1e-12):
        return 0.0, 1.0
    from scipy.stats import ttest_rel  # type: ignore[import-untyped]

    result: Any = ttest_rel(train, test)
    t, p = float(result.statistic), float(result.pvalue)
    return (None if math.isnan(t) else t), (None if math.isnan(p) else p)


def cross_validate(
    trials: Trials,
    models: Sequence[Model] = MODELS,
    *,
    rng: np.random.Generator,
    folds: int = 5,
    restarts: int = DEFAULT_RESTARTS,
    candidates: int = DEFAULT_CANDIDATES,
) -> list[CrossValidation]:
    """k-fold cross-validation of every model, one fold split per agent shared by the models."""
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    for model in models:
        require_trials(trials, model, max(2 * folds, model.min_trials + 2))
    train, test = fold_masks(trials, folds, rng)
    rows = trials.select(np.repeat(np.arange(trials.n_agents), folds))
    out = []
    for model in models:
        theta, _, _ = fit_rows(
            model, rows, rng, weights=train, restarts=restarts, candidates=candidates
        )
        usable = _usable(theta)
        train_acc = model.accuracy(usable, rows, train).reshape(trials.n_agents, folds)
        test_acc = model.accuracy(usable, rows, test).reshape(trials.n_agents, folds)
        per_train, per_test = train_acc.mean(axis=1), test_acc.mean(axis=1)
        t, p = _paired_t(per_train, per_test)
        out.append(
            CrossValidation(
                model=model.name,
                folds=folds,
                agents=trials.n_agents,
                train_accuracy=[float(v) for v in per_train],
                test_accuracy=[float(v) for v in per_test],
                train_mean=float(per_train.mean()),
                train_sd=float(per_train.std(ddof=1)) if per_train.size > 1 else 0.0,
                test_mean=float(per_test.mean()),
                test_sd=float(per_test.std(ddof=1)) if per_test.size > 1 else 0.0,
                t=t,
                p=p,
            )
        )
    return out


def shuffled_choices(trials: Trials, rng: np.random.Generator) -> Floats:
    """Each agent's choices permuted among its own trials (padding stays padding)."""
    out = trials.choice.copy()
    for a in range(trials.n_agents):
        m = int(trials.n_trials[a])
        out[a, :m] = trials.choice[a, rng.permutation(m)]
    return out


def permutation_test(
    trials: Trials,
    model: Model,
    *,
    rng: np.random.Generator,
    permutations: int = 200,
    restarts: int = 2,
    candidates: int = 16,
) -> PermutationTest:
    """Refit ``model`` on ``permutations`` shuffles of every agent's choices (all shuffles of
    all agents fitted as one batch) and compare with the fit to the real choices."""
    if permutations < 1:
        raise ValueError("a permutation test needs at least 1 permutation")
    require_trials(trials, model)
    real_theta, real_nll, _ = fit_rows(model, trials, rng, restarts=restarts, candidates=candidates)
    real_ll = -real_nll
    real_acc = model.accuracy(_usable(real_theta), trials)
    shuffled = np.concatenate([shuffled_choices(trials, rng) for _ in range(permutations)])
    many = trials.select(np.tile(np.arange(trials.n_agents), permutations)).with_choices(shuffled)
    theta, nll, _ = fit_rows(model, many, rng, restarts=restarts, candidates=candidates)
    ll = (-nll).reshape(permutations, trials.n_agents)
    acc = model.accuracy(_usable(theta), many).reshape(permutations, trials.n_agents)
    total = ll.sum(axis=1)
    # "At least as high" up to TIE: a shuffle that leaves the choices as they were (an agent
    # who always accepts) ties with the real fit and must count.
    beats = int(np.sum(total >= real_ll.sum() - TIE * trials.n_agents))
    agent_beats = np.sum(ll >= real_ll[None, :] - TIE, axis=0)
    return PermutationTest(
        model=model.name,
        permutations=permutations,
        agents=trials.n_agents,
        real_loglik=float(real_ll.sum()),
        real_accuracy=float(real_acc.mean()),
        perm_loglik=[float(v) for v in total],
        perm_accuracy=[float(v) for v in acc.mean(axis=1)],
        p_value=(1 + beats) / (1 + permutations),
        agent_p_values=[float((1 + b) / (1 + permutations)) for b in agent_beats],
    )

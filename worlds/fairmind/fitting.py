"""Per-agent maximum-likelihood fits of the FairMindSim models (section 3.3, Tables 3 and 6).

Each agent is fitted separately (its own maximum of its own likelihood), but all agents (and
all their restarts) move through the optimiser together, so that a pass over the trials
scores every agent at once. For each model:

1. Seeded starts: ``candidates`` points uniform in the model's start box, plus its centre,
   are scored for every agent in one pass; the ``restarts`` best of each agent's are kept.
2. Batched damped Newton from every start at once, in the unconstrained coordinates
   u = logit((θ − lb)/(ub − lb)): finite-difference gradient and Hessian (every stencil point
   of every row in one pass), step −V·diag(1/(|w| + μ))·Vᵀ·g, Armijo backtracking, per-row
   damping μ. Each agent keeps its best end point; coordinates within 1e-8 of a bound go on
   it if that does not lower the likelihood.
3. ``scipy.optimize.minimize`` (L-BFGS-B, the model's bounds, in θ, gradient by clipped
   central differences) from that point for every agent whose projected gradient there is
   above ``POLISH_GTOL`` — optima on a bound, which u only approaches, and slow tails. (At the
   other agents L-BFGS-B would stop at its first evaluation.) The better of the two is kept.

``converged`` says whether the projected gradient |θ − clip(θ − ∇, lb, ub)| at the reported
fit is below ``CONVERGED_GTOL``; fits along a ridge (RRM with learning_rate → 0 and tau at its
bound) can end above it while their likelihood has stopped changing. Parameters that do not
enter a model's likelihood (BREM-NoPref's η) are not estimated and are reported NaN.
Results depend only on the generator's seed, not on how rows are chunked.

Reported per (agent, model): ``n_trials``, ``loglik`` = ln L̂, ``k``, ``aic`` = 2k − 2 ln L̂,
``accuracy`` (predict PUNISH when P > 0.5), and the fitted parameters by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from agora.worlds.fairmind.models import (
    MODELS,
    AgentId,
    Floats,
    Model,
    Trials,
    TrialsError,
)

STEP: Final = 1e-5  # central-difference step for the gradient
DEFAULT_RESTARTS: Final = 4
DEFAULT_CANDIDATES: Final = 32
POLISH_GTOL: Final = 1e-5  # rows whose projected gradient exceeds this go to L-BFGS-B
CONVERGED_GTOL: Final = 1e-3  # ``converged``: the projected gradient at the fit is below this
CHUNK_CELLS: Final = 3_000_000  # rows × points × trials scored in one pass at most


class AgentFit(msgspec.Struct, frozen=True):
    """One (agent, model) fit."""

    agent: AgentId
    model: str
    n_trials: int
    loglik: float
    k: int
    aic: float
    accuracy: float
    params: dict[str, float]
    converged: bool  # max |projected gradient of −ln L| ≤ CONVERGED_GTOL at the fit

    def theta(self, model: Model) -> Floats:
        """The parameter vector in ``model.params`` order (inert ones 0)."""
        return np.array(
            [0.0 if math.isnan(self.params[name]) else self.params[name] for name in model.params]
        )


class ModelSummary(msgspec.Struct, frozen=True):
    """Tables 3/6: a model's mean AIC and accuracy over agents."""

    model: str
    agents: int
    k: int
    mean_aic: float
    mean_accuracy: float
    mean_loglik: float
    best_aic_share: float  # share of agents for which this model has the lowest AIC


class _Minimum(msgspec.Struct, frozen=True):
    x: list[float]
    nll: float
    success: bool


# ---- scipy, typed at the boundary ----------------------------------------------------------


def _lbfgsb(
    objective: Callable[[Floats], tuple[float, Floats]],
    start: Floats,
    bounds: Sequence[tuple[float, float]],
    maxiter: int,
) -> _Minimum:
    from scipy.optimize import minimize  # type: ignore[import-untyped]

    result: Any = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=list(bounds),
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-7},
    )
    return _Minimum(
        x=[float(v) for v in np.asarray(result.x, dtype=float)],
        nll=float(result.fun),
        success=bool(result.success),
    )


# ---- one agent -----------------------------------------------------------------------------


def require_trials(trials: Trials, model: Model, minimum: int | None = None) -> None:
    """Raise ``TrialsError`` naming the first agent with too few rounds for ``model``."""
    need = model.min_trials if minimum is None else minimum
    for a, name in enumerate(trials.agents):
        have = int(trials.n_trials[a])
        if have < need:
            raise TrialsError(
                f"trials: agent {name!r} has {have} rounds; model {model.name} needs at least "
                f"{need}; drop the agent or give it more rounds"
            )


def _full(model: Model, free_values: Floats) -> Floats:
    """Free-parameter rows (R, len(free)) → full rows (R, k), inert parameters at 0."""
    rows = np.zeros((free_values.shape[0], model.k))
    rows[:, list(model.free)] = free_values
    return rows


def _objective(
    model: Model, trials: Trials, weights: npt.NDArray[np.bool_]
) -> Callable[[Floats], tuple[float, Floats]]:
    free = model.free
    lower = np.array([model.bounds[i][0] for i in free])
    upper = np.array([model.bounds[i][1] for i in free])
    n = len(free)

    def objective(x: Floats) -> tuple[float, Floats]:
        x = np.clip(np.asarray(x, dtype=float), lower, upper)
        step = STEP * np.maximum(1.0, np.abs(x))
        plus = np.minimum(x + step, upper)
        minus = np.maximum(x - step, lower)
        stencil = np.repeat(x[None, :], 2 * n + 1, axis=0)
        idx = np.arange(n)
        stencil[1 + idx, idx] = plus
        stencil[1 + n + idx, idx] = minus
        values = model.nll(_full(model, stencil), trials, weights)
        grad = (values[1 : n + 1] - values[n + 1 :]) / (plus - minus)
        return float(values[0]), grad

    return objective


def _unit(model: Model) -> tuple[Floats, Floats]:
    free = model.free
    lower = np.array([model.bounds[i][0] for i in free])
    upper = np.array([model.bounds[i][1] for i in free])
    return lower, upper


def _to_theta(u: Floats, lower: Floats, upper: Floats) -> Floats:
    """θ = lb + (ub − lb)·σ(u): the batched stage works unconstrained in u."""
    return np.asarray(lower + (upper - lower) * (0.5 * (1.0 + np.tanh(0.5 * u))), dtype=float)


def _to_u(theta: Floats, lower: Floats, upper: Floats) -> Floats:
    share = np.clip((theta - lower) / (upper - lower), 1e-9, 1.0 - 1e-9)
    return np.asarray(np.log(share) - np.log1p(-share), dtype=float)


def _offsets(n: int, h: float) -> Floats:
    """Stencil offsets: 0, ±h·e_i, and h·(e_i + e_l) for i < l (rows of an (m, n) array)."""
    eye = np.eye(n) * h
    pairs = [eye[i] + eye[q] for i in range(n) for q in range(i + 1, n)]
    blocks = [np.zeros((1, n)), eye, -eye]
    if pairs:
        blocks.append(np.asarray(pairs))
    return np.vstack(blocks)


def _newton(
    model: Model,
    trials: Trials,
    weights: npt.NDArray[np.bool_],
    u: Floats,
    *,
    maxiter: int,
    gtol: float = 1e-6,
    ftol: float = 1e-8,
    h: float = 1e-4,
) -> tuple[Floats, Floats]:
    """Damped (saddle-free) Newton on −ln L in u-space for every row at once: the gradient and
    Hessian are finite differences, every stencil point of every still-moving row scored in
    one pass; the step is −V·diag(1/(|w| + μ))·Vᵀ·g from the Hessian's eigen-decomposition,
    with Armijo backtracking and a per-row damping μ. Returns (u, −ln L) per row."""
    lower, upper = _unit(model)
    rows, n = u.shape
    offsets = _offsets(n, h)
    m = offsets.shape[0]
    u = u.copy()
    idx = np.arange(n)
    pair_i = [i for i in range(n) for q in range(i + 1, n)]
    pair_q = [q for i in range(n) for q in range(i + 1, n)]
    damping = np.full(rows, 1e-3)
    active = np.arange(rows)

    def score(points: Floats, data: Trials, w: npt.NDArray[np.bool_]) -> Floats:
        return model.nll(_full(model, _to_theta(points, lower, upper)), data, w)

    for _ in range(maxiter):
        if active.size == 0:
            break
        count = active.size
        data = trials.select(active)
        w = weights[active]
        x = u[active]
        values = score(
            (x[:, None, :] + offsets[None, :, :]).reshape(count * m, n),
            data.select(np.repeat(np.arange(count), m)),
            np.repeat(w, m, axis=0),
        ).reshape(count, m)
        f0 = values[:, 0]
        plus, minus = values[:, 1 : 1 + n], values[:, 1 + n : 1 + 2 * n]
        grad = (plus - minus) / (2.0 * h)
        hess = np.empty((count, n, n))
        hess[:, idx, idx] = (plus - 2.0 * f0[:, None] + minus) / h**2
        if pair_i:
            both = values[:, 1 + 2 * n :]
            mixed = (both - plus[:, pair_i] - plus[:, pair_q] + f0[:, None]) / h**2
            hess[:, pair_i, pair_q] = mixed
            hess[:, pair_q, pair_i] = mixed
        moving = np.max(np.abs(grad), axis=1) > gtol
        moving &= np.all(np.isfinite(hess), axis=(1, 2)) & np.isfinite(f0)
        mu = damping[active]
        eigval, eigvec = np.linalg.eigh(np.where(moving[:, None, None], hess, np.eye(n)))
        scale = 1.0 / (np.abs(eigval) + mu[:, None])
        step = -np.einsum("rij,rj,rkj,rk->ri", eigvec, scale, eigvec, grad)
        step *= np.minimum(1.0, 5.0 / np.maximum(np.max(np.abs(step), axis=1), 1e-300))[:, None]
        step[~moving] = 0.0
        slope = np.sum(grad * step, axis=1)
        length = np.ones(count)
        done = ~moving
        f_new = f0.copy()
        for _ in range(12):
            pending = np.flatnonzero(~done)
            if pending.size == 0:
                break
            trial = x[pending] + length[pending, None] * step[pending]
            value = score(trial, data.select(pending), w[pending])
            ok = value <= f0[pending] + 1e-4 * length[pending] * slope[pending]
            x[pending[ok]] = trial[ok]
            f_new[pending[ok]] = value[ok]
            done[pending[ok]] = True
            length[pending[~ok]] *= 0.5
        u[active] = x
        mu = np.where(moving & done & (length == 1.0), np.maximum(mu / 3.0, 1e-8), mu)
        mu = np.where(moving & done & (length < 1.0), mu * 3.0, mu)
        mu = np.where(moving & ~done, mu * 10.0, mu)
        damping[active] = mu
        # A row stops when its gradient is flat, when a step gains less than ``ftol``, or when
        # it cannot descend even at high damping; L-BFGS-B finishes what is left.
        keep = moving & (mu < 1e8) & (~done | (f0 - f_new > ftol))
        active = active[keep]
    return u, score(u, trials, weights)


def fit_rows(
    model: Model,
    trials: Trials,
    rng: np.random.Generator,
    *,
    weights: npt.ArrayLike | None = None,
    restarts: int = DEFAULT_RESTARTS,
    candidates: int = DEFAULT_CANDIDATES,
    polish: bool = True,
    maxiter: int = 60,
) -> tuple[Floats, Floats, npt.NDArray[np.bool_]]:
    """Fit every row of ``trials`` (an agent, or a fold or shuffle of one) separately:
    (θ̂ (N, k) with inert entries NaN, −ln L̂ (N,), converged (N,): the projected gradient
    at θ̂ is at most ``CONVERGED_GTOL``).

    Per row: ``candidates`` points uniform in the start box (and its centre) are scored in one
    pass; the ``restarts`` best start a batched damped Newton run (all rows and restarts
    together, in the unconstrained u = logit((θ − lb)/(ub − lb))); the best end point is then
    polished by ``scipy.optimize.minimize`` (L-BFGS-B, the model's bounds, exact θ), which also
    reaches optima on a bound. ``weights`` (N, T) restricts each row's likelihood to some
    trials (cross-validation)."""
    if restarts < 1:
        raise ValueError("restarts must be ≥ 1")
    w = trials.mask if weights is None else np.asarray(weights, dtype=bool) & trials.mask
    if w.shape != trials.mask.shape:
        raise ValueError(f"weights of shape {w.shape} for trials {trials.mask.shape}")
    rows = trials.n_agents
    free = model.free
    n = len(free)
    box = np.array([model.start_box[i] for i in free])
    count = max(candidates, restarts)
    unit = rng.random((rows, count, n))  # all draws up front: results do not depend on chunks
    draws = np.concatenate(
        [
            np.broadcast_to(box.mean(axis=1), (rows, 1, n)),
            box[:, 0] + unit * (box[:, 1] - box[:, 0]),
        ],
        axis=1,
    )
    # Rows go through in chunks that keep one scoring pass to a few million cells.
    stencil = 2 * n + 1 + n * (n - 1) // 2
    cells = max(count + 1, restarts * stencil) * max(trials.choice.shape[1], 1)
    chunk = max(1, CHUNK_CELLS // cells)
    theta = np.empty((rows, n))
    nll = np.empty(rows)
    converged = np.empty(rows, dtype=bool)
    for first in range(0, rows, chunk):
        part = np.arange(first, min(rows, first + chunk))
        theta[part], nll[part], converged[part] = _fit_chunk(
            model, trials.select(part), w[part], draws[part], restarts, polish, maxiter
        )
    out = np.full((rows, model.k), np.nan)
    out[:, list(free)] = theta
    return out, nll, converged


def _fit_chunk(
    model: Model,
    trials: Trials,
    w: npt.NDArray[np.bool_],
    draws: Floats,
    restarts: int,
    polish: bool,
    maxiter: int,
) -> tuple[Floats, Floats, npt.NDArray[np.bool_]]:
    rows, count, n = draws.shape
    lower, upper = _unit(model)
    screen = model.nll(
        _full(model, draws.reshape(rows * count, n)),
        trials.select(np.repeat(np.arange(rows), count)),
        np.repeat(w, count, axis=0),
    ).reshape(rows, count)
    screen = np.where(np.isfinite(screen), screen, np.inf)
    best = np.argsort(screen, axis=1, kind="stable")[:, :restarts]
    starts = np.take_along_axis(draws, best[:, :, None], axis=1)  # (rows, restarts, n)

    inst = np.repeat(np.arange(rows), restarts)
    u, f = _newton(
        model,
        trials.select(inst),
        w[inst],
        _to_u(starts.reshape(-1, n), lower, upper),
        maxiter=maxiter,
    )
    f = np.where(np.isfinite(f), f, np.inf).reshape(rows, restarts)
    pick = np.argmin(f, axis=1)
    theta = _to_theta(u.reshape(rows, restarts, n)[np.arange(rows), pick], lower, upper)
    nll = model.nll(_full(model, theta), trials, w)

    # u-space only approaches a bound: put coordinates within 1e-8 of their range on it
    # where that does not lower the likelihood.
    share = (theta - lower) / (upper - lower)
    snapped = np.where(share < 1e-8, lower, np.where(share > 1.0 - 1e-8, upper, theta))
    snapped_nll = model.nll(_full(model, snapped), trials, w)
    better = snapped_nll <= nll
    theta[better], nll[better] = snapped[better], snapped_nll[better]
    if polish:
        # L-BFGS-B per row where the batched stage left a projected gradient (optima on a
        # bound, which u-space only approaches; slow tails); elsewhere it would stop at once.
        bounds = [model.bounds[i] for i in model.free]
        for r in np.flatnonzero(_kkt_gap(model, trials, w, theta) > POLISH_GTOL):
            one = trials.select([int(r)])
            found = _lbfgsb(_objective(model, one, w[r : r + 1]), theta[r], bounds, 500)
            x = np.clip(np.asarray(found.x), lower, upper)
            value = float(model.nll(_full(model, x[None, :]), one, w[r : r + 1])[0])
            if value <= nll[r]:
                theta[r], nll[r] = x, value
    converged = _kkt_gap(model, trials, w, theta) <= CONVERGED_GTOL
    return theta, np.asarray(nll, dtype=float), converged


def _kkt_gap(model: Model, trials: Trials, weights: npt.NDArray[np.bool_], theta: Floats) -> Floats:
    """max |θ − clip(θ − ∇, lb, ub)| per row, the projected gradient of −ln L that L-BFGS-B
    stops on (at most the distance to a bound the gradient pushes against), by the clipped
    central differences of ``_objective``, all rows in one pass."""
    lower, upper = _unit(model)
    rows, n = theta.shape
    step = STEP * np.maximum(1.0, np.abs(theta))
    plus = np.minimum(theta + step, upper)
    minus = np.maximum(theta - step, lower)
    stencil = np.repeat(theta[:, None, :], 2 * n, axis=1)
    idx = np.arange(n)
    stencil[:, idx, idx] = plus
    stencil[:, n + idx, idx] = minus
    values = model.nll(
        _full(model, stencil.reshape(rows * 2 * n, n)),
        trials.select(np.repeat(np.arange(rows), 2 * n)),
        np.repeat(weights, 2 * n, axis=0),
    ).reshape(rows, 2 * n)
    grad = (values[:, :n] - values[:, n:]) / (plus - minus)
    projected = theta - np.clip(theta - grad, lower, upper)  # L-BFGS-B's measure
    return np.asarray(np.max(np.abs(projected), axis=1), dtype=float)


def fit_one(
    model: Model,
    trials: Trials,
    rng: np.random.Generator,
    *,
    restarts: int = DEFAULT_RESTARTS,
    candidates: int = DEFAULT_CANDIDATES,
    weights: npt.ArrayLike | None = None,
) -> tuple[Floats, float, bool]:
    """Fit one agent (``trials`` holds exactly one): (θ̂ with inert entries NaN, −ln L̂,
    converged)."""
    if trials.n_agents != 1:
        raise ValueError(f"fit_one takes one agent's trials, got {trials.n_agents}")
    theta, nll, success = fit_rows(
        model, trials, rng, weights=weights, restarts=restarts, candidates=candidates
    )
    return theta[0], float(nll[0]), bool(success[0])


# ---- many agents ---------------------------------------------------------------------------


def fit(
    trials: Trials,
    models: Sequence[Model] = MODELS,
    *,
    rng: np.random.Generator,
    restarts: int = DEFAULT_RESTARTS,
    candidates: int = DEFAULT_CANDIDATES,
    polish: bool = True,
) -> list[AgentFit]:
    """Every agent × every model, agent-major (all models of the first agent, then the next)."""
    for model in models:
        require_trials(trials, model)
    per_model = []
    for model in models:
        theta, nll, success = fit_rows(
            model, trials, rng, restarts=restarts, candidates=candidates, polish=polish
        )
        per_model.append((model, theta, nll, success))
    out: list[AgentFit] = []
    for a in range(trials.n_agents):
        one = trials.agent(a)
        for model, theta, nll, success in per_model:
            out.append(_agent_fit(model, one, theta[a], float(nll[a]), bool(success[a])))
    return out


def _agent_fit(model: Model, one: Trials, theta: Floats, nll: float, success: bool) -> AgentFit:
    usable = np.where(np.isnan(theta), 0.0, theta)[None, :]
    loglik = -nll
    return AgentFit(
        agent=one.agents[0],
        model=model.name,
        n_trials=int(one.n_trials[0]),
        loglik=loglik,
        k=model.k,
        aic=2.0 * model.k - 2.0 * loglik,
        accuracy=float(model.accuracy(usable, one)[0]),
        params={name: float(theta[i]) for i, name in enumerate(model.params)},
        converged=success,
    )


def summarize(fits: Sequence[AgentFit]) -> list[ModelSummary]:
    """Tables 3/6: per model (in first-seen order), mean AIC, accuracy and ln L over agents, and
    the share of agents whose lowest AIC is this model's (ties go to the first model listed)."""
    names = list(dict.fromkeys(fit.model for fit in fits))
    by_agent: dict[AgentId, dict[str, AgentFit]] = {}
    for fit_ in fits:
        by_agent.setdefault(fit_.agent, {})[fit_.model] = fit_
    wins = dict.fromkeys(names, 0)
    for per_model in by_agent.values():
        best = min((m for m in names if m in per_model), key=lambda m: per_model[m].aic)
        wins[best] += 1
    out = []
    for name in names:
        rows = [f for f in fits if f.model == name]
        out.append(
            ModelSummary(
                model=name,
                agents=len(rows),
                k=rows[0].k,
                mean_aic=float(np.mean([r.aic for r in rows])),
                mean_accuracy=float(np.mean([r.accuracy for r in rows])),
                mean_loglik=float(np.mean([r.loglik for r in rows])),
                best_aic_share=wins[name] / max(len(by_agent), 1),
            )
        )
    return out


def best_by_aic(fits: Sequence[AgentFit]) -> dict[AgentId, str]:
    """Each agent's model with the lowest AIC (ties: the first fitted)."""
    best: dict[AgentId, AgentFit] = {}
    for fit_ in fits:
        if fit_.agent not in best or fit_.aic < best[fit_.agent].aic:
            best[fit_.agent] = fit_
    return {agent: fit_.model for agent, fit_ in best.items()}


def fits_columns(fits: Sequence[AgentFit]) -> dict[str, list[Any]]:
    """Column-wise rows for ``fits.csv``: agent, model, n_trials, loglik, k, aic, accuracy, then
    one column per parameter name (first-seen order), NaN where a model lacks it."""
    params = list(dict.fromkeys(name for fit_ in fits for name in fit_.params))
    columns: dict[str, list[Any]] = {
        name: [] for name in ("agent", "model", "n_trials", "loglik", "k", "aic", "accuracy")
    }
    for name in params:
        columns[name] = []
    for fit_ in fits:
        columns["agent"].append(fit_.agent)
        columns["model"].append(fit_.model)
        columns["n_trials"].append(fit_.n_trials)
        columns["loglik"].append(fit_.loglik)
        columns["k"].append(fit_.k)
        columns["aic"].append(fit_.aic)
        columns["accuracy"].append(fit_.accuracy)
        for name in params:
            columns[name].append(fit_.params.get(name, math.nan))
    return columns

"""FairMindSim's choice models as negative log-likelihoods over agents × trials (section 3.3).

Every model here is a logistic choice model: it gives each trial j of each agent a logit φ_j,
P_j = P(PUNISH) = σ(φ_j) = 1 / (1 + e^(−φ_j)), and the log-likelihood of an agent's choices
y_j ∈ {0 = ACCEPT, 1 = PUNISH} is

    ln L = Σ_j [ y_j·φ_j − ln(1 + e^(φ_j)) ]          (= Σ_j ln P_j^y_j (1 − P_j)^(1−y_j))

A model "predicts PUNISH" on a trial when P_j > 0.5 (φ_j > 0), which is how accuracy is scored.
Logits are causal: φ_j depends on the stimulus of rounds ≤ j and on the choices of rounds < j
only, so the same code scores observed choices and simulates new ones.

The quantities of a round j (all from ``brem.py``):

- E_j = (P1_j − P2_j) / 30, the norm-violation intensity (0 for 15:15, 1 for 30:0);
- Y_j, the cost of punishing; the observer's pay is 10 on ACCEPT, 10 − Y_j on PUNISH;
- z_j = z(R_{j−1}), the observer's cumulative earnings before round j z-scored online over
  H = [R_1, …, R_{j−1}] (population SD; z = 0 while |H| < 2; SD = 1 when it is 0), computed
  from the observed choices;
- D_j = max(P1_j − P2_j, 0), the inequity (in points) that Player 2 suffers and that punishing
  removes (P1's share goes to 0, so after a punishment P2 is no longer behind).

The six models (k = number of parameters; bounds are those of the fitter):

``BREM`` (k = 4: beta1 ∈ [0, 30], beta2 ∈ [−15, 15], c ∈ [−15, 15], eta ∈ [0, 2]), section 2.3:
    bel_0 = 1 (fixed, not fitted);
    φ_j = β1·bel_{j−1}·E_j + β2·z_j − C,  P_j = σ(φ_j)  (T = 1);
    bel_j = bel_{j−1} + η·(y_j − P_j).

``BREM-NoUpdate`` (k = 3: beta1, beta2, c): BREM with η = 0, so bel ≡ 1 and
    φ_j = β1·E_j + β2·z_j − C.

``BREM-NoPref`` (k = 3: beta2, c, eta): BREM with β1 = 0, so φ_j = β2·z_j − C. The belief
    only ever enters through β1, so η does not change the likelihood: it is counted in k (the
    ablation removes one of BREM's four parameters) but not estimated, and fits report it NaN.

``Rational`` (k = 1: epsilon ∈ [1e-6, 0.5]): punishing never pays (it costs Y_j ≥ 0 and earns
    nothing), so the agent accepts except for a lapse: P_j = ε, φ_j = ln(ε / (1 − ε)). With
    ε ≤ 0.5 the model always predicts ACCEPT. (The MLE is ε̂ = min(mean y, 0.5).)

``IA`` (k = 2: alpha ∈ [0, 5], lam ∈ [0, 20]), Fehr–Schmidt inequity aversion of a third
    party: the observer's utility is its own pay minus α times the disadvantageous inequity
    Player 2 is left with, U = π_O − α·max(π_1 − π_2, 0). ACCEPT leaves (10, P1, P2), PUNISH
    leaves (10 − Y, 0, P2), so
        ΔU_j = U(PUNISH) − U(ACCEPT) = α·D_j − Y_j,   φ_j = λ·ΔU_j,   P_j = σ(λ·(α·D_j − Y_j)),
    with α in points of own pay per point of inequity and λ (named ``lam``) a softmax inverse
    temperature (the offline inequity-averse agents of ``offline.py`` play exactly this).
    Static: nothing carries from one round to the next.

``RRM`` (k = 3: learning_rate ∈ [0, 1], tau ∈ [0, 10], bias ∈ [−20, 20]), a relative-reward
    learner with no belief: each action a ∈ {A = ACCEPT, P = PUNISH} has a value Q_a, starting
    at 0; the reward of a round is the pay relative to the endowment, r_j = pay_j − 10
    (0 on ACCEPT, −Y_j on PUNISH), and the chosen action's value moves by the reward
    prediction error: Q_{a_j} ← Q_{a_j} + learning_rate·(r_j − Q_{a_j}) (the other stays).
        φ_j = bias + τ·(Q_P − Q_A)  with the values before round j.
    ACCEPT always pays 10, so in this game Q_A stays 0 and the model learns how much punishing
    has cost; it ignores the current split and cost (driven by reward history alone).

Every likelihood function takes parameters as an (R, k) array and trial arrays of shape (R, T)
or (1, T) (one agent's trials broadcast against R parameter vectors), so one call scores all
agents, or one agent at many parameter vectors, in a single pass over the trials; only BREM and
RRM loop, and only over trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from agora.worlds.fairmind.brem import (
    ENDOWMENT,
    POT,
    earnings_z_series,
    norm_violation,
    round_pay,
    sigmoid,
)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
AgentId = int | str

REQUIRED_COLUMNS: Final = ("agent", "round", "p1_share", "p2_share", "cost", "choice")
_CHOICE_WORDS: Final = {"accept": 0.0, "punish": 1.0}


class TrialsError(ValueError):
    """A trials table that cannot be fitted; the message is one line naming the row or column
    and the fix."""


# ---- the trials ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Trials:
    """Trials of many agents as (agents × rounds) arrays, each agent's rounds in order and
    padded on the right where agents have different counts (``mask`` False there).

    Build one with ``Trials.from_frame`` / ``Trials.from_columns`` (long format, validated) or
    ``Trials.from_schedule`` (every agent on one schedule, as the simulator does)."""

    agents: tuple[AgentId, ...]
    rounds: Ints
    p1: Floats
    p2: Floats
    cost: Floats
    choice: Floats
    mask: Bools

    def __post_init__(self) -> None:
        shape = self.choice.shape
        if len(shape) != 2 or shape[0] != len(self.agents):
            raise TrialsError(f"trials arrays must be (agents, rounds), got {shape}")
        for name in ("rounds", "p1", "p2", "cost", "mask"):
            if getattr(self, name).shape != shape:
                raise TrialsError(f"trials array {name} has shape {getattr(self, name).shape}")

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: Any) -> Trials:
        """From a polars (or anything with ``columns`` and ``get_column``/``__getitem__``)
        DataFrame with the columns ``agent, round, p1_share, p2_share, cost, choice``."""
        columns = list(frame.columns)
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise TrialsError(
                f"trials: missing column {missing[0]!r}; the table needs "
                f"{', '.join(REQUIRED_COLUMNS)} (choice 1 = PUNISH, 0 = ACCEPT)"
            )
        values = {name: _column_values(frame, name) for name in REQUIRED_COLUMNS}
        return cls.from_columns(**values)

    @classmethod
    def from_columns(
        cls,
        agent: Sequence[Any] | npt.ArrayLike,
        round: Sequence[Any] | npt.ArrayLike,
        p1_share: Sequence[Any] | npt.ArrayLike,
        p2_share: Sequence[Any] | npt.ArrayLike,
        cost: Sequence[Any] | npt.ArrayLike,
        choice: Sequence[Any] | npt.ArrayLike,
    ) -> Trials:
        """From long-format columns (one entry per trial). Rows are numbered from 1 in error
        messages (the first data row of a CSV is row 1). An agent's rounds are ordered by
        ``round``."""
        agents_raw = list(np.asarray(agent, dtype=object).ravel())
        n = len(agents_raw)
        numeric = {
            "round": _numeric("round", round, n),
            "p1_share": _numeric("p1_share", p1_share, n),
            "p2_share": _numeric("p2_share", p2_share, n),
            "cost": _numeric("cost", cost, n),
        }
        choices = _choices(choice, n)
        if n == 0:
            raise TrialsError("trials: the table has no rows; it needs one row per round")
        for row, name in enumerate(agents_raw):
            if name is None or (isinstance(name, float) and math.isnan(name)):
                raise TrialsError(f"trials row {row + 1}: agent is empty; give every row an agent")
        ids: list[AgentId] = [_agent_id(name) for name in agents_raw]

        rounds = numeric["round"]
        for row in range(n):
            if rounds[row] != math.floor(rounds[row]):
                raise TrialsError(
                    f"trials row {row + 1} (agent {ids[row]!r}): round is {rounds[row]:g}; "
                    "rounds must be whole numbers"
                )
        for name in ("p1_share", "p2_share"):
            bad = np.flatnonzero((numeric[name] < 0) | (numeric[name] > POT))
            if bad.size:
                row = int(bad[0])
                raise TrialsError(
                    f"trials row {row + 1} (agent {ids[row]!r}, round {rounds[row]:g}): "
                    f"{name} is {numeric[name][row]:g}; shares must lie in [0, {POT}]"
                )
        bad = np.flatnonzero(numeric["cost"] < 0)
        if bad.size:
            row = int(bad[0])
            raise TrialsError(
                f"trials row {row + 1} (agent {ids[row]!r}, round {rounds[row]:g}): cost is "
                f"{numeric['cost'][row]:g}; the cost of punishing must be ≥ 0"
            )

        order: dict[AgentId, list[int]] = {}
        for row, name in enumerate(ids):
            order.setdefault(name, []).append(row)
        agents = tuple(order)
        width = max(len(rows) for rows in order.values())
        shape = (len(agents), width)
        out_rounds = np.full(shape, -1, dtype=np.int64)
        out = {name: np.zeros(shape) for name in ("p1", "p2", "cost", "choice")}
        mask = np.zeros(shape, dtype=bool)
        for a, name in enumerate(agents):
            rows = np.asarray(order[name])
            rows = rows[np.argsort(rounds[rows], kind="stable")]
            seen = rounds[rows]
            dup = np.flatnonzero(seen[1:] == seen[:-1])
            if dup.size:
                first, second = sorted((int(rows[dup[0]]), int(rows[dup[0] + 1])))
                raise TrialsError(
                    f"trials row {second + 1} (agent {name!r}, round {seen[dup[0]]:g}): "
                    f"duplicates row {first + 1}; keep one row per (agent, round)"
                )
            m = rows.size
            out_rounds[a, :m] = seen.astype(np.int64)
            out["p1"][a, :m] = numeric["p1_share"][rows]
            out["p2"][a, :m] = numeric["p2_share"][rows]
            out["cost"][a, :m] = numeric["cost"][rows]
            out["choice"][a, :m] = choices[rows]
            mask[a, :m] = True
        return cls(
            agents=agents,
            rounds=out_rounds,
            p1=out["p1"],
            p2=out["p2"],
            cost=out["cost"],
            choice=out["choice"],
            mask=mask,
        )

    @classmethod
    def from_schedule(
        cls,
        p1: npt.ArrayLike,
        p2: npt.ArrayLike,
        cost: npt.ArrayLike,
        choice: npt.ArrayLike,
        agents: Sequence[AgentId] | None = None,
    ) -> Trials:
        """Every agent on one schedule (1-D ``p1``, ``p2``, ``cost`` of length T) with
        ``choice`` of shape (agents, T)."""
        y = np.atleast_2d(np.asarray(choice, dtype=float))
        n, t = y.shape
        row = np.ones((n, 1))
        return cls(
            agents=tuple(agents) if agents is not None else tuple(range(n)),
            rounds=np.broadcast_to(np.arange(1, t + 1, dtype=np.int64), (n, t)).copy(),
            p1=row * np.asarray(p1, dtype=float),
            p2=row * np.asarray(p2, dtype=float),
            cost=row * np.asarray(cost, dtype=float),
            choice=y.copy(),
            mask=np.ones((n, t), dtype=bool),
        )

    # -- views -----------------------------------------------------------------------------

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @cached_property
    def n_trials(self) -> Ints:
        """Rounds per agent."""
        return np.asarray(self.mask.sum(axis=1), dtype=np.int64)

    @cached_property
    def violation(self) -> Floats:
        """E_j = (P1 − P2) / 30."""
        return norm_violation(self.p1, self.p2)

    @cached_property
    def inequity(self) -> Floats:
        """D_j = max(P1 − P2, 0), in points."""
        return np.maximum(self.p1 - self.p2, 0.0)

    @cached_property
    def earnings_z(self) -> Floats:
        """z(R_{j−1}) from the observed choices (the spec's online convention). Padding sits
        after an agent's last round, so it never reaches a real round's z."""
        return earnings_z_series(round_pay(self.choice, self.cost))

    @cached_property
    def relative_reward(self) -> Floats:
        """r_j = pay_j − 10: 0 on ACCEPT, −Y on PUNISH."""
        return round_pay(self.choice, self.cost) - ENDOWMENT

    def agent(self, index: int) -> Trials:
        """One agent's trials, without padding."""
        m = int(self.n_trials[index])
        return Trials(
            agents=(self.agents[index],),
            rounds=self.rounds[index : index + 1, :m],
            p1=self.p1[index : index + 1, :m],
            p2=self.p2[index : index + 1, :m],
            cost=self.cost[index : index + 1, :m],
            choice=self.choice[index : index + 1, :m],
            mask=self.mask[index : index + 1, :m],
        )

    def select(self, indices: Sequence[int] | Ints) -> Trials:
        """Some agents' rows (repeats allowed: the fitter's restarts, folds and shuffles)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = Trials(
            agents=tuple(self.agents[int(i)] for i in idx),
            rounds=self.rounds[idx],
            p1=self.p1[idx],
            p2=self.p2[idx],
            cost=self.cost[idx],
            choice=self.choice[idx],
            mask=self.mask[idx],
        )
        # Derived arrays are per row, so the selected rows of the parent's are the selection's
        # own: the fitter selects many rows of few agents in every step, and computing z on
        # each selection was a third of a permutation test's time.
        for name in _DERIVED:
            out.__dict__[name] = getattr(self, name)[idx]
        return out

    def with_choices(self, choice: npt.ArrayLike) -> Trials:
        """The same rounds with other choices (earnings, z and rewards follow them)."""
        y = np.asarray(choice, dtype=float)
        if y.shape != self.choice.shape:
            raise TrialsError(f"choices of shape {y.shape} for trials {self.choice.shape}")
        return Trials(
            agents=self.agents,
            rounds=self.rounds,
            p1=self.p1,
            p2=self.p2,
            cost=self.cost,
            choice=np.where(self.mask, y, 0.0),
            mask=self.mask,
        )

    def head(self, rounds: int) -> Trials:
        """The first ``rounds`` columns (the simulator's view of the rounds so far)."""
        return Trials(
            agents=self.agents,
            rounds=self.rounds[:, :rounds],
            p1=self.p1[:, :rounds],
            p2=self.p2[:, :rounds],
            cost=self.cost[:, :rounds],
            choice=self.choice[:, :rounds],
            mask=self.mask[:, :rounds],
        )

    def to_columns(self) -> dict[str, list[Any]]:
        """Long format, one entry per real trial (the inverse of ``from_columns``)."""
        out: dict[str, list[Any]] = {name: [] for name in REQUIRED_COLUMNS}
        for a, name in enumerate(self.agents):
            for j in range(int(self.n_trials[a])):
                out["agent"].append(name)
                out["round"].append(int(self.rounds[a, j]))
                out["p1_share"].append(float(self.p1[a, j]))
                out["p2_share"].append(float(self.p2[a, j]))
                out["cost"].append(float(self.cost[a, j]))
                out["choice"].append(int(self.choice[a, j]))
        return out


def _column_values(frame: Any, name: str) -> list[Any]:
    column = frame.get_column(name) if hasattr(frame, "get_column") else frame[name]
    return list(column.to_list() if hasattr(column, "to_list") else column)


def _agent_id(value: Any) -> AgentId:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return str(value)


def _numeric(name: str, values: Sequence[Any] | npt.ArrayLike, n: int) -> Floats:
    raw = list(np.asarray(values, dtype=object).ravel())
    if len(raw) != n:
        raise TrialsError(f"trials: column {name!r} has {len(raw)} rows but 'agent' has {n}")
    out = np.empty(n)
    for row, value in enumerate(raw):
        try:
            if isinstance(value, bool | np.bool_) or value is None:
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            shown = "empty" if value is None or value == "" else repr(value)
            raise TrialsError(
                f"trials row {row + 1}: {name} is {shown}; column {name!r} must hold numbers"
            ) from None
        if not math.isfinite(number):
            raise TrialsError(
                f"trials row {row + 1}: {name} is {number}; column {name!r} must be finite"
            )
        out[row] = number
    return out


def _choices(values: Sequence[Any] | npt.ArrayLike, n: int) -> Floats:
    raw = list(np.asarray(values, dtype=object).ravel())
    if len(raw) != n:
        raise TrialsError(f"trials: column 'choice' has {len(raw)} rows but 'agent' has {n}")
    out = np.empty(n)
    for row, value in enumerate(raw):
        number: float | None = None
        if isinstance(value, str):
            number = _CHOICE_WORDS.get(value.strip().lower())
            if number is None:
                try:
                    number = float(value)
                except ValueError:
                    number = None
        elif value is not None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number not in (0.0, 1.0):
            shown = "empty" if value is None or value == "" else repr(value)
            raise TrialsError(
                f"trials row {row + 1}: choice is {shown}; use 1 (PUNISH) or 0 (ACCEPT)"
            )
        out[row] = number
    return out


# The cached per-row arrays ``select`` carries over (cached_property keeps them in __dict__).
_DERIVED: Final = ("n_trials", "violation", "inequity", "earnings_z", "relative_reward")


# ---- the models ----------------------------------------------------------------------------

LogitFn = Callable[[Floats, Trials], Floats]


@dataclass(frozen=True)
class Model:
    """A named logistic choice model: parameter names, fitter bounds, the box random restarts
    start from, and its logit function (parameters (R, k), trials (R or 1, T) → (R, T))."""

    name: str
    params: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    start_box: tuple[tuple[float, float], ...]
    logit_fn: LogitFn = field(repr=False)
    inert: tuple[str, ...] = ()  # counted in k but not in the likelihood (reported NaN)
    formula: str = ""

    @property
    def k(self) -> int:
        return len(self.params)

    @property
    def free(self) -> tuple[int, ...]:
        """Indices of the parameters the likelihood depends on (the fitter estimates these)."""
        return tuple(i for i, name in enumerate(self.params) if name not in self.inert)

    @property
    def min_trials(self) -> int:
        """The fewest rounds an agent needs for this model to be fitted: k + 1."""
        return self.k + 1

    def _theta(self, theta: npt.ArrayLike) -> Floats:
        out = np.atleast_2d(np.asarray(theta, dtype=float))
        if out.shape[-1] != self.k:
            raise ValueError(f"{self.name} takes {self.k} parameters, got shape {out.shape}")
        return out

    def logits(self, theta: npt.ArrayLike, trials: Trials) -> Floats:
        """φ (R, T) for parameter rows ``theta`` (R, k) on ``trials`` (R or 1 agents)."""
        values = self._theta(theta)
        if trials.n_agents not in (1, values.shape[0]):
            raise ValueError(
                f"{values.shape[0]} parameter rows for {trials.n_agents} agents' trials"
            )
        return self.logit_fn(values, trials)

    def probabilities(self, theta: npt.ArrayLike, trials: Trials) -> Floats:
        """P(PUNISH) per trial."""
        return sigmoid(self.logits(theta, trials))

    def loglik(
        self, theta: npt.ArrayLike, trials: Trials, weights: npt.ArrayLike | None = None
    ) -> Floats:
        """ln L per parameter row, over the trials where ``weights`` (default ``mask``) is
        non-zero."""
        phi = self.logits(theta, trials)
        w = trials.mask if weights is None else np.asarray(weights)
        terms = trials.choice * phi - np.logaddexp(0.0, phi)
        return np.asarray(np.sum(np.where(w, terms, 0.0), axis=-1), dtype=float)

    def nll(
        self, theta: npt.ArrayLike, trials: Trials, weights: npt.ArrayLike | None = None
    ) -> Floats:
        """−ln L per parameter row."""
        return -self.loglik(theta, trials, weights)

    def accuracy(
        self, theta: npt.ArrayLike, trials: Trials, weights: npt.ArrayLike | None = None
    ) -> Floats:
        """Share of trials where the prediction (PUNISH when P > 0.5) matches the choice."""
        phi = self.logits(theta, trials)
        w = np.broadcast_to(trials.mask if weights is None else np.asarray(weights), phi.shape)
        hits = np.where(w, (phi > 0.0) == (trials.choice > 0.5), False).sum(axis=-1)
        count = w.astype(bool).sum(axis=-1)
        return np.asarray(hits / np.maximum(count, 1), dtype=float)


def _col(theta: Floats, i: int) -> Floats:
    return theta[:, i : i + 1]


def brem_logits(theta: Floats, trials: Trials) -> Floats:
    """Full BREM; ``theta`` columns beta1, beta2, c, eta. One pass over the trials.

    Works with half-logits h = φ/2 so that a step is a few in-place ufuncs:
    σ(φ) = (1 + tanh h)/2, hence bel_j = bel_{j−1} + η·(y_j − ½) − ½η·tanh h_j."""
    rows = theta.shape[0]
    t = trials.choice.shape[1]
    beta1, beta2, c, eta = (theta[:, i : i + 1] for i in range(4))
    gain = np.ascontiguousarray(np.broadcast_to(0.5 * beta1 * trials.violation, (rows, t)).T)
    base = np.ascontiguousarray(np.broadcast_to(0.5 * (beta2 * trials.earnings_z - c), (rows, t)).T)
    drift = np.ascontiguousarray(np.broadcast_to(eta * (trials.choice - 0.5), (rows, t)).T)
    half_eta = 0.5 * eta[:, 0]
    half = np.empty((t, rows))
    belief = np.ones(rows)  # bel_0 = 1
    scratch = np.empty(rows)
    for j in range(t):
        h_j = half[j]
        np.multiply(gain[j], belief, out=h_j)
        h_j += base[j]
        np.tanh(h_j, out=scratch)
        scratch *= half_eta
        belief += drift[j]
        belief -= scratch
    return np.ascontiguousarray(2.0 * half.T)


def brem_beliefs(theta: npt.ArrayLike, trials: Trials) -> Floats:
    """bel_0 … bel_T under full BREM (R, T + 1), for belief trajectories of fitted agents."""
    values = np.atleast_2d(np.asarray(theta, dtype=float))
    phi = brem_logits(values, trials)
    p = sigmoid(phi)
    delta = np.where(trials.mask, trials.choice - p, 0.0)
    steps = values[:, 3:4] * delta
    return np.concatenate([np.ones((phi.shape[0], 1)), 1.0 + np.cumsum(steps, axis=-1)], axis=-1)


def no_update_logits(theta: Floats, trials: Trials) -> Floats:
    """BREM with η = 0: φ = β1·E + β2·z − C; columns beta1, beta2, c."""
    return np.asarray(
        _col(theta, 0) * trials.violation + _col(theta, 1) * trials.earnings_z - _col(theta, 2),
        dtype=float,
    )


def no_pref_logits(theta: Floats, trials: Trials) -> Floats:
    """BREM with β1 = 0: φ = β2·z − C; columns beta2, c, eta (eta inert)."""
    phi = _col(theta, 0) * trials.earnings_z - _col(theta, 1)
    return np.asarray(np.broadcast_to(phi, (theta.shape[0], phi.shape[1])), dtype=float)


def rational_logits(theta: Floats, trials: Trials) -> Floats:
    """P = ε on every trial; column epsilon."""
    eps = _col(theta, 0)
    phi = np.log(eps) - np.log1p(-eps)
    return np.asarray(np.broadcast_to(phi, (theta.shape[0], trials.mask.shape[1])), dtype=float)


def ia_logits(theta: Floats, trials: Trials) -> Floats:
    """φ = λ·(α·D − Y); columns alpha, lam."""
    return np.asarray(
        _col(theta, 1) * (_col(theta, 0) * trials.inequity - trials.cost), dtype=float
    )


def rrm_logits(theta: Floats, trials: Trials) -> Floats:
    """φ_j = bias + τ·(Q_P − Q_A) before round j; columns learning_rate, tau, bias.

    The update of a round is Q ← Q + a_j·(r_j − Q) with a_j = rate·y_j for Q_P and
    rate·(1 − y_j) for Q_A, so a step is a few in-place ufuncs on precomputed a_j·r_j."""
    rows = theta.shape[0]
    t = trials.choice.shape[1]
    rate, tau, bias = (theta[:, i : i + 1] for i in range(3))
    y = trials.choice
    reward = trials.relative_reward
    step_p = np.ascontiguousarray(np.broadcast_to(rate * y, (rows, t)).T)
    step_a = np.ascontiguousarray(np.broadcast_to(rate * (1.0 - y), (rows, t)).T)
    gain_p = np.ascontiguousarray(np.broadcast_to(rate * y * reward, (rows, t)).T)
    gain_a = np.ascontiguousarray(np.broadcast_to(rate * (1.0 - y) * reward, (rows, t)).T)
    q_punish = np.zeros(rows)
    q_accept = np.zeros(rows)
    diff = np.empty((t, rows))
    scratch = np.empty(rows)
    for j in range(t):
        np.subtract(q_punish, q_accept, out=diff[j])
        # Q ← (1 − a)·Q + a·r
        np.multiply(step_p[j], q_punish, out=scratch)
        q_punish -= scratch
        q_punish += gain_p[j]
        np.multiply(step_a[j], q_accept, out=scratch)
        q_accept -= scratch
        q_accept += gain_a[j]
    return np.asarray(bias + tau * diff.T, dtype=float)


BREM: Final = Model(
    name="BREM",
    params=("beta1", "beta2", "c", "eta"),
    bounds=((0.0, 30.0), (-15.0, 15.0), (-15.0, 15.0), (0.0, 2.0)),
    start_box=((0.0, 8.0), (-2.0, 2.0), (-2.0, 6.0), (0.0, 1.0)),
    logit_fn=brem_logits,
    formula="φ_j = β1·bel_{j−1}·E_j + β2·z_j − C; bel_j = bel_{j−1} + η·(y_j − σ(φ_j)); bel_0 = 1",
)
BREM_NO_UPDATE: Final = Model(
    name="BREM-NoUpdate",
    params=("beta1", "beta2", "c"),
    bounds=((0.0, 30.0), (-15.0, 15.0), (-15.0, 15.0)),
    start_box=((0.0, 8.0), (-2.0, 2.0), (-2.0, 6.0)),
    logit_fn=no_update_logits,
    formula="φ_j = β1·E_j + β2·z_j − C (η = 0, bel ≡ 1)",
)
BREM_NO_PREF: Final = Model(
    name="BREM-NoPref",
    params=("beta2", "c", "eta"),
    bounds=((-15.0, 15.0), (-15.0, 15.0), (0.0, 2.0)),
    start_box=((-2.0, 2.0), (-2.0, 6.0), (0.0, 1.0)),
    logit_fn=no_pref_logits,
    inert=("eta",),
    formula="φ_j = β2·z_j − C (β1 = 0; η then never enters)",
)
RATIONAL: Final = Model(
    name="Rational",
    params=("epsilon",),
    bounds=((1e-6, 0.5),),
    start_box=((0.01, 0.5),),
    logit_fn=rational_logits,
    formula="P_j = ε (never punish but by a lapse)",
)
INEQUALITY_AVERSION: Final = Model(
    name="IA",
    params=("alpha", "lam"),
    bounds=((0.0, 5.0), (0.0, 20.0)),
    start_box=((0.0, 1.0), (0.0, 3.0)),
    logit_fn=ia_logits,
    formula="φ_j = λ·(α·max(P1_j − P2_j, 0) − Y_j)",
)
RRM: Final = Model(
    name="RRM",
    params=("learning_rate", "tau", "bias"),
    bounds=((0.0, 1.0), (0.0, 10.0), (-20.0, 20.0)),
    start_box=((0.0, 1.0), (0.0, 2.0), (-3.0, 3.0)),
    logit_fn=rrm_logits,
    formula=(
        "φ_j = bias + τ·(Q_P − Q_A); Q_a ← Q_a + rate·(r_j − Q_a) for the chosen a, "
        "r_j = pay_j − 10, Q_0 = 0"
    ),
)

MODELS: Final[tuple[Model, ...]] = (
    RATIONAL,
    INEQUALITY_AVERSION,
    RRM,
    BREM,
    BREM_NO_UPDATE,
    BREM_NO_PREF,
)


def model_named(name: str) -> Model:
    """A model by its name (case-insensitive; ``-``/``_`` alike)."""
    key = name.lower().replace("_", "-")
    for model in MODELS:
        if model.name.lower() == key:
            return model
    known = ", ".join(model.name for model in MODELS)
    raise ValueError(f"unknown model {name!r} (known: {known})")

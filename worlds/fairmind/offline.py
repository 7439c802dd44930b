"""FairMindSim's offline agents: behavioural models that answer the round's asks on the offline
backend. They are labelled offline in every log and header and are never an LLM's results;
they exist so that runs, the trial table and the fitting have real structure to work on.

Three kinds (``world.offline.kind``: one for every agent, or "mix" by seeded quotas):

- **brem**: plays by BREM (``brem.py``): P(punish) = σ(β1·bel·E + β2·z(R) − C); after each
  round it is told, its belief moves by prediction error, bel ← bel + η·(y − P). The belief
  is a function of the outcomes it was told (``remember``), so a resumed or replayed run
  rebuilds it.
- **inequity_aversion**: a third-party Fehr–Schmidt-style utility over the two players'
  inequity: U(ACCEPT) = 10 − α·max(P1 − P2, 0), U(PUNISH) = 10 − Y − α·max(0 − P2, 0) =
  10 − Y, so P(punish) = σ(λ·(α·(P1 − P2) − Y)). Two parameters (α, λ); unlike BREM it weighs
  the cost, and it learns nothing.
- **rational**: punishing never pays, so it accepts, except for a lapse: P(punish) = ε.

**Parameters from the persona** (its ``cohort.Disposition``: for FairMindSim's personas zJSI,
zERS, zCESD and zAQ are their distances from Table 1's means in SDs; another cohort maps its
own traits onto the four; each positive parameter then multiplied by exp(N(0, s)) with s =
``world.offline.parameter_noise``, drawn from the agent's own stream):

- BREM β1 = 3.5 · exp(0.25·zJSI + 0.1·zERS) · {prosocial 1.15, individualistic 0.85,
  competitive 0.6}: the justice-sensitive and the emotionally reactive weigh a violation more;
- BREM β2 = 0.1 · {prosocial 1, individualistic 2, competitive 3}: pro-self agents let their
  own running earnings sway them more (z of the spec's online convention);
- BREM C = 3.0 + 0.3·zCESD + {prosocial 0, individualistic 0.4, competitive 0.8} (plus
  N(0, s)): depressive symptoms and a pro-self orientation raise the bar to act;
- BREM η = 0.3 · exp(−0.3·zAQ), at most 1: a preference for routine (AQ) slows belief change;
- inequity α = 0.2 · exp(0.3·zJSI) · {1.2, 0.8, 0.5} points of own pay per point of Player 1's
  advantage, λ = exp(−0.2·zCESD) per point;
- rational ε = 0.05 · exp(0.3·zERS), within [0.005, 0.3].

**Affect** (each rating rounded and clipped to [−100, 100], plus N(0, σ·k) with σ =
``world.offline.affect_noise``): with k = exp(0.3·zERS) the persona's reactivity, m = −10·zCESD
its mood and v = E·exp(0.2·zJSI)·b the violation it perceives (b = its belief, at least 0,
for BREM; 1 otherwise):

- appraisal: valence m + 30 − 90·k·v, arousal −10 + 70·k·v (a worse split, a worse and more
  agitated feeling);
- choice: valence as appraised − 2·Y on PUNISH (paying for it), − 10·k·v on ACCEPT
  (swallowing it); arousal as appraised + 15·k on PUNISH, − 10·k on ACCEPT;
- feedback: PUNISH: valence as appraised + 45·k·v − 3·Y (justice restored, at its cost),
  arousal as appraised − 10; ACCEPT: valence as appraised − 10·k·v, arousal − 15.

Every draw comes from the call's own generator (the engine's, keyed by the request), so a
re-ask draws afresh and a rerun draws the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from agora.engine.records import AgentId
from agora.engine.seeding import Seeds
from agora.worlds.fairmind import brem
from agora.worlds.fairmind.cohort import Disposition
from agora.worlds.fairmind.config import KINDS, OfflineMix
from agora.worlds.fairmind.world import RoundOutcome, RoundView

_BETA1_SVO = {"prosocial": 1.15, "individualistic": 0.85, "competitive": 0.6}
_BETA2_SVO = {"prosocial": 1.0, "individualistic": 2.0, "competitive": 3.0}
_C_SVO = {"prosocial": 0.0, "individualistic": 0.4, "competitive": 0.8}
_ALPHA_SVO = {"prosocial": 1.2, "individualistic": 0.8, "competitive": 0.5}


class Params(msgspec.Struct, frozen=True):
    """One agent's kind and the parameters it plays by (those of the other kinds unused)."""

    kind: str
    beta1: float = 0.0
    beta2: float = 0.0
    c: float = 0.0
    eta: float = 0.0
    alpha: float = 0.0
    lam: float = 0.0
    epsilon: float = 0.0


def kind_quotas(mix: OfflineMix, agents: int) -> list[str]:
    """How many agents of each kind (largest remainders of the normalised weights), in kind
    order; a single kind makes every agent that kind."""
    if mix.kind != "mix":
        return [mix.kind] * agents
    weights = np.array([getattr(mix, kind) for kind in KINDS], dtype=float)
    if weights.sum() <= 0:
        weights = np.ones(len(KINDS))
    exact = weights / weights.sum() * agents
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: agents - counts.sum()]:
        counts[i] += 1
    return [kind for kind, count in zip(KINDS, counts, strict=True) for _ in range(count)]


def derive(kind: str, persona: Disposition, noise: float, rng: np.random.Generator) -> Params:
    """The persona-derived parameters of one agent of ``kind`` (the module docstring's map)."""
    zjsi, zers, zcesd, zaq = persona.justice, persona.reactivity, persona.low_mood, persona.routine
    svo = persona.svo

    def jitter() -> float:
        return float(np.exp(rng.normal(0.0, noise))) if noise > 0 else 1.0

    if kind == "brem":
        return Params(
            kind,
            beta1=3.5 * math.exp(0.25 * zjsi + 0.1 * zers) * _BETA1_SVO[svo] * jitter(),
            beta2=0.1 * _BETA2_SVO[svo] * jitter(),
            c=3.0 + 0.3 * zcesd + _C_SVO[svo] + (float(rng.normal(0.0, noise)) if noise else 0.0),
            eta=min(1.0, 0.3 * math.exp(-0.3 * zaq) * jitter()),
        )
    if kind == "inequity_aversion":
        return Params(
            kind,
            alpha=0.2 * math.exp(0.3 * zjsi) * _ALPHA_SVO[svo] * jitter(),
            lam=math.exp(-0.2 * zcesd) * jitter(),
        )
    return Params(kind, epsilon=float(np.clip(0.05 * math.exp(0.3 * zers) * jitter(), 0.005, 0.3)))


class _State:
    """What an agent learnt from the outcomes it was told: its belief and its earnings."""

    __slots__ = ("belief", "earnings")

    def __init__(self) -> None:
        self.belief = brem.BELIEF_0
        self.earnings: list[float] = []  # R_1 … R_{j−1}: cumulative, one per played round


class FairMindOffline:
    """The offline stand-in for a model: answers appraisal, choice and feedback by kind."""

    def __init__(self, dispositions: Sequence[Disposition], mix: OfflineMix, seeds: Seeds) -> None:
        self.dispositions = tuple(dispositions)
        self.mix = mix
        kinds = kind_quotas(mix, len(self.dispositions))
        # Which agent gets which kind: a seeded permutation of the quotas.
        order = seeds.rng("fairmind-offline-kinds").permutation(len(kinds))
        kinds = [kinds[int(i)] for i in order]
        self.params = tuple(
            derive(kind, persona, mix.parameter_noise, seeds.rng("fairmind-offline", agent))
            for agent, (kind, persona) in enumerate(zip(kinds, self.dispositions, strict=True))
        )
        self.state = [_State() for _ in self.dispositions]

    # ---- what it learns ----------------------------------------------------------------------

    def remember(self, agent_id: AgentId, tick: int, outcome: Any) -> None:
        done: RoundOutcome = outcome
        state = self.state[agent_id]
        params = self.params[agent_id]
        if params.kind == "brem":
            p = self._brem_p(params, state, done.p1_share, done.p2_share)
            punished = 1.0 if done.choice == "PUNISH" else 0.0
            state.belief = float(brem.updated_belief(params.eta, state.belief, punished, p))
        state.earnings.append(float(done.earnings))

    @staticmethod
    def _brem_p(params: Params, state: _State, p1: int, p2: int) -> float:
        violation = brem.norm_violation(p1, p2)
        z = brem.earnings_z(state.earnings)
        return float(
            brem.punish_probability(
                params.beta1, params.beta2, params.c, state.belief, violation, z
            )
        )

    def punish_probability(self, agent_id: AgentId, view: RoundView) -> float:
        """This agent's P(punish) for the round it sees, from what it has learnt so far."""
        params, state, split = self.params[agent_id], self.state[agent_id], view.split
        if params.kind == "brem":
            return self._brem_p(params, state, split.p1_share, split.p2_share)
        if params.kind == "inequity_aversion":
            gain = params.alpha * max(split.p1_share - split.p2_share, 0) - split.cost
            return float(brem.sigmoid(params.lam * gain))
        return params.epsilon

    # ---- its answers -------------------------------------------------------------------------

    def answer_ask(
        self,
        agent_id: AgentId,
        ask: str,
        observation: Any,
        answers: Mapping[str, Any],
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        view: RoundView = observation
        persona, params = self.dispositions[agent_id], self.params[agent_id]
        k = math.exp(0.3 * persona.reactivity)
        mood = -10.0 * persona.low_mood
        belief = max(self.state[agent_id].belief, 0.0) if params.kind == "brem" else 1.0
        v = view.split.violation * math.exp(0.2 * persona.justice) * belief
        sd = self.mix.affect_noise * k
        cost = view.split.cost

        def rate(valence: float, arousal: float) -> dict[str, Any]:
            return {
                "valence": _grid(valence + rng.normal(0.0, sd) if sd else valence),
                "arousal": _grid(arousal + rng.normal(0.0, sd) if sd else arousal),
            }

        # The appraisal as the model holds it, before noise: later phases start from it.
        valence0, arousal0 = mood + 30.0 - 90.0 * k * v, -10.0 + 70.0 * k * v
        if ask == "appraisal":
            return rate(valence0, arousal0), "rating"
        if ask == "choice":
            p = self.punish_probability(agent_id, view)
            choice = "PUNISH" if rng.random() < p else "ACCEPT"
            if choice == "PUNISH":
                fields = rate(valence0 - 2.0 * cost, arousal0 + 15.0 * k)
            else:
                fields = rate(valence0 - 10.0 * k * v, arousal0 - 10.0 * k)
            reasoning = self._reasoning(agent_id, view, p, choice)
            return {"reasoning": reasoning, "choice": choice, **fields}, choice.lower()
        chosen = answers["choice"]["choice"]
        if chosen == "PUNISH":
            return rate(valence0 + 45.0 * k * v - 3.0 * cost, arousal0 - 10.0), "rating"
        return rate(valence0 - 10.0 * k * v, arousal0 - 15.0), "rating"

    def _reasoning(self, agent_id: AgentId, view: RoundView, p: float, choice: str) -> str:
        params, state, split = self.params[agent_id], self.state[agent_id], view.split
        if params.kind == "brem":
            why = (
                f"the split breaks the fair-split norm by E = {split.violation:.2f}, my belief "
                f"in the norm is {state.belief:.2f} and my earnings z is "
                f"{brem.earnings_z(state.earnings):+.2f}"
            )
        elif params.kind == "inequity_aversion":
            why = (
                f"Player 1 is {split.p1_share - split.p2_share} points ahead of Player 2, which "
                f"weighs {params.alpha:.2f} per point against a cost of {split.cost}"
            )
        else:
            why = f"punishing costs me {split.cost} points and gains me nothing"
        return (
            f"[offline {params.kind} agent, not a language model] {why}; so I punish with "
            f"probability {p:.2f}, and this time I {choice.lower()}."
        )

    def decide(
        self,
        agent_id: AgentId,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        raise NotImplementedError("this world's turns are its asks")

    def describe(self) -> dict[str, Any]:
        counts = {kind: sum(p.kind == kind for p in self.params) for kind in KINDS}
        return {
            "model": "offline behavioural agents (BREM, inequity aversion, rational), not an LLM",
            "kind": self.mix.kind,
            "counts": counts,
            "mapping": "persona-derived parameters and affect: worlds/fairmind/offline.py",
            # Each agent's true parameters, so a fit of the run's trials can be checked.
            "agents": [
                {"agent": agent, **_rounded(params)} for agent, params in enumerate(self.params)
            ],
        }


# The parameters each kind plays by (the other fields of its ``Params`` are unused).
KIND_PARAMS = {
    "brem": ("beta1", "beta2", "c", "eta"),
    "inequity_aversion": ("alpha", "lam"),
    "rational": ("epsilon",),
}


def _rounded(params: Params) -> dict[str, Any]:
    return {
        "kind": params.kind,
        **{name: round(getattr(params, name), 6) for name in KIND_PARAMS[params.kind]},
    }


def _grid(value: float) -> int:
    return int(np.clip(round(value), -100, 100))

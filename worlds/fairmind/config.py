"""The ``[world]`` table of a FairMindSim run, checked by msgspec (a mistake is one line naming
the field)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Weight = Annotated[float, msgspec.Meta(ge=0.0)]

# The offline kinds: "mix" draws each agent's kind by the weights below, the others make every
# agent one kind (so a sweep can treat each kind as a "model").
OfflineKind = Literal["mix", "brem", "inequity_aversion", "rational"]
KINDS: tuple[str, ...] = ("brem", "inequity_aversion", "rational")


class OfflineMix(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The offline behavioural agents (``offline.py``): a behavioural model, never an LLM."""

    kind: OfflineKind = "mix"
    # With kind = "mix": each kind's share of the agents (normalised; seeded quota per kind).
    brem: Weight = 0.6
    inequity_aversion: Weight = 0.3
    rational: Weight = 0.1
    # The SD, in grid points, of the seeded noise on every affect rating (scaled by the
    # persona's emotional reactivity).
    affect_noise: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 10.0
    # The SD of each agent's idiosyncratic deviation from its persona-derived parameters
    # (on the log scale for positive parameters), so two equal personas still differ.
    parameter_noise: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.1


class FairMindConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "fairmind"
    agents: Annotated[int, msgspec.Meta(ge=1)] = 20
    # A CSV of real participants (``personas.py`` lists its columns); unset: personas
    # generated from Table 1's moments. Read relative to the working directory.
    personas: str | None = None
    # A CSV of rounds (round, p1_share, p2_share, cost); unset: the shipped default
    # (``schedule.csv``, 54 unfair + 6 fair rounds in one seeded order).
    schedule: str | None = None
    # How many of its past rounds an agent sees listed in its view (its earnings always);
    # the LLM agent's own memory (``agents.memory``) is best 0 here, or it repeats them.
    history_rounds: Annotated[int, msgspec.Meta(ge=0)] = 60
    # Show the questionnaires' items (Appendix B) in the rules, shared by every agent.
    item_texts: bool = True
    # The human punishment rate over unfair rounds that the action difference is taken
    # against (eq. 2; the paper's cohort: 0.3506).
    human_punish_rate: Probability = 0.3506
    offline: OfflineMix = msgspec.field(default_factory=OfflineMix)

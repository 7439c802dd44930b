"""The Schelling city's parameters; every one of them can be set in the run config."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class OfflineMix(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The offline backend's population: rule egoists and rule altruists with logit noise."""

    altruist_fraction: Probability = 0.2
    # Logit noise on each agent's own criterion (Δ personal for egoists, Δ system for altruists);
    # 0 means the best option is always taken.
    temperature: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    # How readily an egoist takes up the board's call for the common good: the chance that it
    # weighs a decision by the city's welfare is this times the share of visible posts that make
    # that call. 0 = deaf to the board (Grauwin's egoists); the Adaptive Egoist mix sets it.
    board_susceptibility: Probability = 0.0
    # The chance that a resident does not reconsider this round and stays: staggered decisions
    # damp the overshoot of simultaneous moves (the Altruistic Optimizer mix sets it).
    inertia: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.0
    # Altruists who expect their neighbours to move too: each leaves a district above half full
    # only with the chance that its excess needs (excess / residents), towards a district drawn in
    # proportion to the welfare gain, so simultaneous moves settle instead of overshooting.
    anticipation: bool = False


class SchellingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["schelling_city"] = "schelling_city"
    agents: Annotated[int, msgspec.Meta(ge=1)] = 225
    districts: Annotated[int, msgspec.Meta(ge=2)] = 9
    cells_per_district: Annotated[int, msgspec.Meta(ge=1)] = 50
    # Utility at full density: u(1) = m. Below 1 the curve falls more slowly above ½ than it rises
    # below it, which is what draws self-interested agents into crowded districts.
    m: Probability = 0.5
    # Fraction of agents asked each tick (1.0 = everyone, as in the experiment).
    activation: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 1.0
    initial: Literal["random", "crowded"] = "random"
    # Prompt framing, to test that findings do not hang on wording: "neutral" lists each choice's
    # effect on the resident first, "welfare_first" lists the city's welfare first and calls the
    # resident's own satisfaction "your own gain".
    framing: Literal["neutral", "welfare_first"] = "neutral"
    offline: OfflineMix = msgspec.field(default_factory=OfflineMix)

    def __post_init__(self) -> None:
        if self.agents > self.districts * self.cells_per_district:
            raise ValueError(
                f"agents ({self.agents}) exceed the city's room "
                f"(districts × cells_per_district = {self.districts * self.cells_per_district})"
            )

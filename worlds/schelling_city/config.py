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
    offline: OfflineMix = msgspec.field(default_factory=OfflineMix)

    def __post_init__(self) -> None:
        if self.agents > self.districts * self.cells_per_district:
            raise ValueError(
                f"agents ({self.agents}) exceed the city's room "
                f"(districts × cells_per_district = {self.districts * self.cells_per_district})"
            )

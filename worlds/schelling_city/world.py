"""The Schelling city: agents in districts, each move weighed by personal and system utility."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from agora.engine.protocols import Missed
from agora.worlds.schelling_city.config import SchellingConfig
from agora.worlds.schelling_city.utility import district_welfare, gini, optimal_allocation

_EPS = 1e-9
SIGNS = ("-", "0", "+")


class Relocation(msgspec.Struct, frozen=True):
    """The action: ``move_to`` a district number (1-based), or ``None`` to stay."""

    move_to: int | None = None


class Option(msgspec.Struct, frozen=True):
    district: int
    population: int
    full: bool
    utility: float
    delta_personal: float
    delta_system: float


class CityView(msgspec.Struct, frozen=True):
    """What an agent sees: the whole city, its own place, and what each move would do."""

    district: int
    utility: float
    populations: tuple[int, ...]
    capacity: int
    options: tuple[Option, ...]


class MoveOutcome(msgspec.Struct, frozen=True):
    wanted: int | None
    moved: bool
    blocked: bool
    district: int
    utility_before: float
    utility_after: float


def sign(value: float) -> int:
    return 0 if abs(value) < _EPS else (1 if value > 0 else -1)


def act_kind(delta_personal: float, delta_system: float) -> str:
    """The spec's micro categories: altruistic lowers one's own utility and raises the system's."""
    personal, system = sign(delta_personal), sign(delta_system)
    if personal < 0 and system > 0:
        return "altruistic"
    if personal > 0:
        return "egoistic"
    return "other"


class SchellingCity:
    independent = False

    def __init__(self, config: SchellingConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.capacity = config.cells_per_district
        self.m = config.m
        self._welfare = district_welfare(self.capacity, self.m)
        self._utility_at = self._welfare[1:] / np.arange(1, self.capacity + 1)  # u(n/H), n ≥ 1
        self.optimum, self.optimal_populations = optimal_allocation(
            config.agents, config.districts, self.capacity, self.m
        )
        self.home = self._initial_placement(rng)  # 0-based district of each agent
        self.populations = np.bincount(self.home, minlength=config.districts).astype(np.int64)
        self._ids = tuple(range(config.agents))
        self._options: dict[int, tuple[Option, ...]] = {}
        self._populations: tuple[int, ...] | None = None
        self._rounded: dict[int, float] = {}
        self._last: dict[str, Any] = self._empty_tick_stats()

    def _initial_placement(self, rng: np.random.Generator) -> NDArray[np.int64]:
        cells = self.config.districts * self.capacity
        if self.config.initial == "random":
            chosen = rng.choice(cells, size=self.config.agents, replace=False)
        else:
            # "crowded": fill districts in order, the hardest start for the optimum.
            chosen = np.arange(self.config.agents)
        home = (chosen // self.capacity).astype(np.int64)
        return np.asarray(rng.permutation(home), dtype=np.int64)

    # -- protocol ------------------------------------------------------------------------------

    def agent_ids(self) -> Sequence[int]:
        return self._ids

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[int]:
        alpha = self.config.activation
        if alpha >= 1.0:
            return self._ids
        count = max(1, round(alpha * len(self._ids)))
        return tuple(int(a) for a in np.sort(rng.choice(len(self._ids), size=count, replace=False)))

    def utility_of(self, population: int) -> float:
        return float(self._utility_at[population - 1]) if population > 0 else 0.0

    def observe(self, agent_id: int, tick: int) -> CityView:
        origin = int(self.home[agent_id])
        populations = self._population_tuple()
        return CityView(
            district=origin + 1,
            utility=self._rounded_utility(populations[origin]),
            populations=populations,
            capacity=self.capacity,
            options=self._options_from(origin),
        )

    def _rounded_utility(self, population: int) -> float:
        # One value per population size, asked for at every observation.
        value = self._rounded.get(population)
        if value is None:
            value = self._rounded[population] = round(self.utility_of(population), 6)
        return value

    def _population_tuple(self) -> tuple[int, ...]:
        if self._populations is None:
            self._populations = tuple(int(n) for n in self.populations)
        return self._populations

    def _options_from(self, origin: int) -> tuple[Option, ...]:
        # Every agent of a district has the same options: computed once per district per state.
        cached = self._options.get(origin)
        if cached is not None:
            return cached
        # Vectorised over destinations: a city of hundreds of districts recomputes them all
        # for every district whose population changed.
        n, f, capacity = self.populations, self._welfare, self.capacity
        here = int(n[origin])
        leave = f[here - 1] - f[here]
        full = n >= capacity
        joined = np.minimum(n + 1, capacity)
        utility_there = np.where(full, 0.0, self._utility_at[joined - 1])
        delta_personal = np.where(full, 0.0, utility_there - self.utility_of(here))
        delta_system = np.where(full, 0.0, leave + f[joined] - f[np.minimum(n, capacity)])
        columns = zip(
            n.tolist(),
            full.tolist(),
            np.round(utility_there, 6).tolist(),
            np.round(delta_personal, 6).tolist(),
            np.round(delta_system, 6).tolist(),
            strict=True,
        )
        result = tuple(
            Option(
                district=k + 1,
                population=there,
                full=is_full,
                utility=utility,
                delta_personal=personal,
                delta_system=system,
            )
            for k, (there, is_full, utility, personal, system) in enumerate(columns)
            if k != origin
        )
        self._options[origin] = result
        return result

    def annotate(self, agent_id: int, observation: Any, action: Any) -> dict[str, Any]:
        view: CityView = observation
        delta_personal, delta_system = _deltas(view, action)
        return {
            "from": view.district,
            "to": action.move_to,
            "d_personal": delta_personal,
            "d_system": delta_system,
            "cell": SIGNS[sign(delta_personal) + 1] + SIGNS[sign(delta_system) + 1],
            "act": act_kind(delta_personal, delta_system),
        }

    def apply(
        self,
        tick: int,
        actions: Mapping[int, Any],
        rng: np.random.Generator,
        missed: Mapping[int, Missed],
    ) -> dict[int, Any]:
        # A resident who missed its turn stays where it is: nothing to book for it.
        # Plain lists in the per-agent loops: numpy scalar access costs more than the work.
        home, populations = self.home.tolist(), self.populations.tolist()
        matrix = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
        acts = {"altruistic": 0, "egoistic": 0, "other": 0}
        before = {agent: self._rounded_utility(populations[home[agent]]) for agent in actions}
        wanting: dict[int, list[int]] = {}
        for agent, action in actions.items():
            origin = home[agent]
            delta_personal, delta_system = _option_deltas(
                origin + 1, self._options_from(origin), action
            )
            matrix[sign(delta_personal) + 1][sign(delta_system) + 1] += 1
            acts[act_kind(delta_personal, delta_system)] += 1
            target = action.move_to
            if target is not None and target - 1 != origin:
                wanting.setdefault(target - 1, []).append(agent)

        movers: list[tuple[int, int]] = []
        blocked: set[int] = set()
        for destination in sorted(wanting):
            requesters = sorted(wanting[destination])
            # Room is counted on the state everyone saw, so the outcome does not depend on order.
            room = max(0, self.capacity - populations[destination])
            if len(requesters) > room:
                order = rng.permutation(len(requesters))
                winners = {requesters[i] for i in order[:room]}
            else:
                winners = set(requesters)
            for agent in requesters:
                if agent in winners:
                    movers.append((agent, destination))
                else:
                    blocked.add(agent)

        for agent, destination in movers:
            populations[home[agent]] -= 1
            populations[destination] += 1
            home[agent] = destination
        if movers:
            self.home[:] = home
            self.populations[:] = populations
            self._options.clear()
            self._populations = None

        outcomes: dict[int, Any] = {}
        moved = {agent for agent, _ in movers}
        for agent, action in actions.items():
            outcomes[agent] = MoveOutcome(
                wanted=action.move_to,
                moved=agent in moved,
                blocked=agent in blocked,
                district=home[agent] + 1,
                utility_before=before[agent],
                utility_after=self._rounded_utility(populations[home[agent]]),
            )
        acted = len(actions)
        self._last = {
            "acted": acted,
            "moves": len(movers),
            "blocked": len(blocked),
            "matrix": matrix,
            "altruistic_share": round(acts["altruistic"] / acted, 6) if acted else 0.0,
            "egoistic_share": round(acts["egoistic"] / acted, 6) if acted else 0.0,
        }
        return outcomes

    def system_utility(self) -> float:
        return float(np.sum(self._welfare[self.populations]))

    def metrics(self, tick: int) -> dict[str, Any]:
        utility = self.system_utility()
        return {
            "poa": round(utility / self.optimum, 6) if self.optimum > 0 else math.nan,
            "gini": round(gini(self.populations), 6),
            "system_utility": round(utility, 6),
            "populations": [int(n) for n in self.populations],
            **self._last,
        }

    def digest(self, tick: int) -> str:
        return hashlib.blake2b(self.home.astype("<i4").tobytes(), digest_size=16).hexdigest()

    def describe(self) -> dict[str, Any]:
        side = math.isqrt(self.config.districts)
        layout = (
            [side, side] if side * side == self.config.districts else [1, self.config.districts]
        )
        return {
            "agents": self.config.agents,
            "districts": self.config.districts,
            "capacity": self.capacity,
            "m": self.m,
            "layout": layout,
            "optimal_system_utility": round(self.optimum, 6),
            "optimal_populations": self.optimal_populations,
            "initial_populations": [int(n) for n in self.populations],
        }

    @staticmethod
    def _empty_tick_stats() -> dict[str, Any]:
        return {
            "acted": 0,
            "moves": 0,
            "blocked": 0,
            "matrix": [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
            "altruistic_share": 0.0,
            "egoistic_share": 0.0,
        }


def _deltas(view: CityView, action: Relocation) -> tuple[float, float]:
    return _option_deltas(view.district, view.options, action)


def _option_deltas(
    district: int, options: tuple[Option, ...], action: Relocation
) -> tuple[float, float]:
    if action.move_to is None or action.move_to == district:
        return 0.0, 0.0
    # Options list every other district in order, so the target's place is known.
    index = action.move_to - 1 if action.move_to < district else action.move_to - 2
    if 0 <= index < len(options) and options[index].district == action.move_to:
        option = options[index]
        return option.delta_personal, option.delta_system
    raise ValueError(f"district {action.move_to} is not among the options")

"""A tiny independent-agents world for scheduler tests: each agent adds to its own counter.

Loaded by the engine as ``tests.independent_world:PLUGIN``, the way a user's own world would be.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from agora.engine.protocols import AnswerField, WorldParts


class CounterConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: str = ""
    agents: int = 4
    idle_ticks: list[int] = msgspec.field(default_factory=list)  # ticks where nobody acts


class CounterView(msgspec.Struct, frozen=True):
    total: int


class Add(msgspec.Struct, frozen=True):
    amount: int


class CounterWorld:
    independent = True

    def __init__(self, agents: int, idle_ticks: list[int]) -> None:
        self.idle_ticks = set(idle_ticks)
        self.totals = [0] * agents
        self.history: list[list[int]] = [[] for _ in range(agents)]

    def agent_ids(self):
        return tuple(range(len(self.totals)))

    def active_agents(self, tick, rng):
        return () if tick in self.idle_ticks else self.agent_ids()

    def observe(self, agent_id, tick):
        return CounterView(self.totals[agent_id])

    def annotate(self, agent_id, observation, action):
        return {"before": observation.total}

    def apply(self, tick, actions, rng, missed):
        outcomes = {}
        for agent, action in actions.items():
            self.totals[agent] += action.amount
            outcomes[agent] = self.totals[agent]
        for agent in actions:
            self.history[agent].append(self.totals[agent])
        return outcomes

    def metrics(self, tick):
        done = [h[tick] for h in self.history if len(h) > tick]
        return {"mean_total": sum(done) / len(done) if done else 0.0}

    def digest(self, tick):
        state = [
            h[: tick + 1 - len([t for t in self.idle_ticks if t <= tick])] for h in self.history
        ]
        return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()

    def describe(self):
        return {"agents": len(self.totals)}


class CounterPrompts:
    def persona(self):
        return "You are counter #{agent}."

    def rules(self):
        return "Add a number to your counter."

    def shared_view(self, tick):
        return f"Round {tick + 1}."

    def private_view(self, agent_id, observation):
        return f"Your total is {observation.total}."

    def answer_fields(self):
        return (AnswerField("reasoning", "why"), AnswerField("amount", "an integer"))

    def decode_action(self, answer, observation):
        amount = answer.get("amount")
        if not isinstance(amount, int):
            raise ValueError('"amount" must be an integer')
        return Add(amount)

    def describe_outcome(self, tick, outcome):
        return f"round {tick + 1}: your total is {outcome}"


class CounterOffline:
    def decide(self, agent_id, observation, rng, signals):
        return {"reasoning": "one more", "amount": int(rng.integers(1, 4))}, "counter"

    def describe(self):
        return {}


class CounterPlugin:
    name = "counter"
    config_type = CounterConfig
    action_type = Add

    def build(self, config: Any, seeds: Any) -> WorldParts:
        return WorldParts(
            CounterWorld(config.agents, config.idle_ticks), CounterPrompts(), CounterOffline()
        )


PLUGIN = CounterPlugin()

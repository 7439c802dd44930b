"""The offline backend: answers written by a seeded behavioural model, no network.

It answers in the same JSON text a model is asked for, so prompts, parsing, re-asks, the log and
the analyses all run as they would against a server. Its backend name is always ``offline``:
it is a stand-in for a model, never presented as one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from agora.engine.config import OfflineSection
from agora.engine.protocols import AnswersAsks, OfflineBehaviour, Policy
from agora.engine.records import Completion, EndpointReport, Request

_MALFORMED_PROSE = (
    "Let me think about this first. I believe the best choice is to wait and see for now.",
    "I'm not sure. Both options have merit.",
)


def estimate_tokens(text: str) -> int:
    """About four characters a token: an estimate, since the offline backend has no tokenizer."""
    return max(1, (len(text) + 3) // 4)


class OfflineClient:
    backend = "offline"

    def __init__(
        self,
        behaviour: OfflineBehaviour,
        policies: Sequence[Policy],
        settings: OfflineSection,
        model: str = "offline",
    ) -> None:
        self._behaviour = behaviour
        self._policies = tuple(policies)
        self._settings = settings
        self._model = model
        self._encode = msgspec.json.Encoder().encode
        # One generator, re-keyed per request from the request's seed: building a fresh
        # Generator (a SeedSequence underneath) cost more than the rest of an offline answer.
        self._bits = np.random.PCG64(0)
        self._rng = np.random.Generator(self._bits)

    @property
    def model(self) -> str:
        return self._model

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return {}  # no server to learn about

    def reports(self) -> list[EndpointReport]:
        return []

    async def complete(self, request: Request) -> Completion:
        if request.turn is None:
            raise ValueError("the offline backend needs the request's turn")
        delay = self._latency_s(request.seed)
        if delay > 0:
            await asyncio.sleep(delay)
        # Keyed after the wait, with no await between keying and drawing: answers are drawn
        # from the request's own stream whatever order concurrent requests finish in.
        text = self._answer(request, self._keyed(request.seed, 0))
        prompt_chars = "".join(m.content for m in request.messages)
        return Completion(
            text=text,
            tokens_in=estimate_tokens(prompt_chars),
            tokens_out=estimate_tokens(text),
            latency_s=delay,
            model=self._model,
        )

    def _answer(self, request: Request, rng: np.random.Generator) -> str:
        turn = request.turn
        assert turn is not None
        signals: dict[str, float] = {}
        for policy in self._policies:
            for stance_name, share in policy.offline_signals(turn.views.get(policy.name)).items():
                signals[stance_name] = signals.get(stance_name, 0.0) + share
        ask = request.ask
        if ask is None:
            fields, stance = self._behaviour.decide(turn.agent_id, turn.observation, rng, signals)
        elif isinstance(self._behaviour, AnswersAsks):
            fields, stance = self._behaviour.answer_ask(
                turn.agent_id, ask.name, turn.observation, ask.answers, rng, signals
            )
        else:
            raise TypeError(
                "this world's turns have several asks, and its offline behaviour has no "
                "answer_ask to answer them"
            )
        if ask is None or ask.policies:
            for policy in self._policies:
                fields.update(
                    policy.offline_fields(turn.agent_id, turn.views.get(policy.name), stance, rng)
                )
        if ask is not None and ask.free_text:
            text = str(fields.get("text", ""))
        else:
            text = self._encode(fields).decode()
        if self._settings.invalid_rate > 0 and rng.random() < self._settings.invalid_rate:
            # Faults a real model makes, so re-asks and invalid records are exercised offline.
            if ask is not None and ask.free_text:
                return ""  # any prose may be valid: the fault a prose ask can see is none
            if rng.random() < 0.5:
                return str(_MALFORMED_PROSE[int(rng.integers(len(_MALFORMED_PROSE)))])
            return text[: max(1, len(text) // 2)]
        return text

    def _latency_s(self, seed: int) -> float:
        base = self._settings.latency_ms / 1000.0
        if base <= 0:
            return 0.0
        if self._settings.latency_sigma <= 0:
            return base
        # A separate stream, so simulated latency never changes the answer.
        rng = self._keyed(seed, 1)
        return float(base * rng.lognormal(0.0, self._settings.latency_sigma))

    def _keyed(self, seed: int, stream: int) -> np.random.Generator:
        digest = hashlib.blake2b(f"{seed}|{stream}".encode(), digest_size=24).digest()
        self._bits.state = {
            "bit_generator": "PCG64",
            "state": {
                "state": int.from_bytes(digest[:16], "little"),
                "inc": int.from_bytes(digest[16:], "little") | 1,
            },
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self._rng

    async def aclose(self) -> None:
        return None

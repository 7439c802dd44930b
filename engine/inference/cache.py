"""An on-disk response cache shared across runs: a rerun with it is exact and makes no request.

The key is everything that determines an answer: model, messages, sampling parameters, seed,
whether JSON was asked for and the request's backend parameters. Only answers are stored, never
failures, and each entry is written to a temporary file and renamed, so a crash never leaves a
half-written entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from agora.engine.inference.layer import ClientLayer
from agora.engine.protocols import LLMClient
from agora.engine.records import Completion, Message, Request


class _Key(msgspec.Struct, array_like=True):
    variant: str
    model: str
    messages: tuple[Message, ...]
    temperature: float
    max_tokens: int
    seed: int
    json_answer: bool
    answer_schema: dict[str, Any] | None


class _KeyWithParams(_Key, array_like=True):
    """A request with parameters; one without keeps the key it had before there were any."""

    params: dict[str, Any]


class ResponseCache:
    """``variant`` names the transport settings that shape answers beyond the request itself
    (backend, JSON mode, batching and its prompt template): answers under one variant are never
    served to another."""

    def __init__(self, root: Path, variant: str = "") -> None:
        self.root = root
        self.variant = variant
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(Completion).decode

    def key(self, model: str, request: Request) -> str:
        fields = (
            self.variant,
            model,
            request.messages,
            request.temperature,
            request.max_tokens,
            request.seed,
            request.json_answer,
            request.answer_schema,
        )
        material = (
            _KeyWithParams(*fields, dict(sorted(request.params.items())))
            if request.params
            else _Key(*fields)
        )
        return hashlib.blake2b(self._encode(material), digest_size=20).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self._decode(data)
        except msgspec.DecodeError:
            return None  # a damaged entry is a miss; the answer is asked again and rewritten

    def put(self, key: str, completion: Completion) -> None:
        self.write(self._path(key), self._encode(completion))

    def probe_path(self, model: str) -> Path:
        """Where the endpoints' probed answer formats are kept, per variant and model."""
        key = hashlib.blake2b(f"probe|{self.variant}|{model}".encode(), digest_size=20)
        return self._path(key.hexdigest())

    @staticmethod
    def write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class CachedClient(ClientLayer):
    def __init__(self, inner: LLMClient, cache: ResponseCache) -> None:
        super().__init__(inner)
        self.cache = cache
        self.hits = 0

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        """What the servers were found to take is kept like an answer: a rerun probes nothing."""
        if known:
            return await self.inner.prepare(known)
        path = self.cache.probe_path(self.inner.model)
        try:
            remembered = msgspec.json.decode(path.read_bytes(), type=dict[str, Any])
        except (FileNotFoundError, msgspec.DecodeError):
            remembered = {}
        described = await self.inner.prepare(remembered)
        unprobed = any(
            isinstance(facts, dict) and (facts.get("probe") or {}).get("unprobed")
            for facts in described.values()
        )
        # Only what a server said is kept: a probe it never answered is asked again next run.
        if not remembered and described and not unprobed:
            self.cache.write(path, msgspec.json.encode(described))
        return described

    async def complete(self, request: Request) -> Completion:
        key = self.cache.key(self.inner.model, request)
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            return msgspec.structs.replace(hit, cached=True, requests=0, latency_s=0.0)
        completion = await self.inner.complete(request)
        self.cache.put(key, msgspec.structs.replace(completion, cached=False))
        return completion

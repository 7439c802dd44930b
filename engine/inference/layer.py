"""The base of every client layer: it wraps an inner client and reports that client's identity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agora.engine.protocols import LLMClient
from agora.engine.records import EndpointReport


class ClientLayer:
    """A layer adds one behaviour (cache, retries, limits) and leaves backend and model as is."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def model(self) -> str:
        return self.inner.model

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return await self.inner.prepare(known)

    def reports(self) -> list[EndpointReport]:
        return self.inner.reports()

    async def aclose(self) -> None:
        await self.inner.aclose()

"""Request parameters from the config: each request that carries none gets ``inference.params``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from agora.engine.inference.layer import ClientLayer
from agora.engine.protocols import LLMClient
from agora.engine.records import Completion, Request


class ParamsClient(ClientLayer):
    """The outermost layer, so the cache key sees the parameters a request is asked with."""

    def __init__(self, inner: LLMClient, params: Mapping[str, Any]) -> None:
        super().__init__(inner)
        self.params = dict(params)

    async def complete(self, request: Request) -> Completion:
        if not request.params and self.params:
            request = msgspec.structs.replace(request, params=dict(self.params))
        return await self.inner.complete(request)

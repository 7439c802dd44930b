"""Inference backends as plug-ins: the ``agora.backends`` entry-point group.

A backend plug-in is an object with

- ``name``: the name ``inference.backend`` gives it;
- ``config_type``: a ``msgspec.Struct`` (``forbid_unknown_fields=True``) for its own options
  table, ``[inference.<name>]``;
- ``build(settings, options, context) -> LLMClient``: the transport, from the inference
  section, the checked options and a ``BackendContext``;
- optionally ``layered`` (default true): whether the engine wraps the transport in its cache,
  retries and limits. A backend that answers locally and exactly (offline) says false.

Requests carry ``params`` (from ``inference.params`` unless the request has its own): a plug-in
reads those it knows; the built-in transports send them nowhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from agora.engine.config import InferenceSection, OfflineSection
from agora.engine.protocols import LLMClient, OfflineBehaviour, Policy
from agora.engine.seeding import Seeds


@dataclasses.dataclass(frozen=True)
class BackendContext:
    """What a transport may need beyond its settings: the offline behaviour and policies (for
    a behavioural model), the run's seeds and the environment (for API keys)."""

    offline: OfflineBehaviour
    policies: Sequence[Policy]
    seeds: Seeds
    environ: Mapping[str, str]

    def api_key(self, settings: InferenceSection) -> str | None:
        return self.environ.get(settings.api_key_env) if settings.api_key_env else None


class BackendPlugin(Protocol):
    name: str
    config_type: type[Any]

    def build(
        self, settings: InferenceSection, options: Any, context: BackendContext
    ) -> LLMClient: ...


class NoOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The options table of a backend that takes none."""


class OfflineBackend:
    name = "offline"
    config_type = OfflineSection
    layered = False  # free and exact answers: nothing to cache, retry or limit

    def build(self, settings: InferenceSection, options: Any, context: BackendContext) -> LLMClient:
        from agora.engine.inference.offline import OfflineClient

        # Always labelled "offline": the behavioural model is never passed off as a model.
        return OfflineClient(context.offline, context.policies, options)


class OpenAIHTTPBackend:
    name = "openai-http"
    config_type = NoOptions
    layered = True

    def build(self, settings: InferenceSection, options: Any, context: BackendContext) -> LLMClient:
        from agora.engine.inference.openai_http import OpenAIHTTPClient

        return OpenAIHTTPClient(
            settings.endpoints,
            settings.model,
            **_transport_options(settings, context),
            batch_max_size=settings.batch_max_size,
            batch_max_wait_ms=settings.batch_max_wait_ms,
            prompt_template=settings.prompt_template,
        )


class LiteLLMBackend:
    name = "litellm"
    config_type = NoOptions
    layered = True

    def build(self, settings: InferenceSection, options: Any, context: BackendContext) -> LLMClient:
        from agora.engine.inference.litellm_client import LiteLLMClient

        return LiteLLMClient(
            settings.model, settings.endpoints, **_transport_options(settings, context)
        )


def _transport_options(settings: InferenceSection, context: BackendContext) -> dict[str, Any]:
    """What both HTTP transports take from the inference section, under the same names."""
    return {
        "api_key": context.api_key(settings),
        "timeout_s": settings.timeout_s,
        "connections": settings.concurrency,
        "json_mode": settings.json_mode,
        "response_format": settings.response_format,
        "eject_after": settings.eject_after,
        "cooldown_s": settings.eject_cooldown_s,
        "adaptive": settings.adaptive_concurrency,
        "initial_concurrency": settings.initial_concurrency,
        "deadline_s": settings.request_deadline_s,
    }


OFFLINE = OfflineBackend()
OPENAI_HTTP = OpenAIHTTPBackend()
LITELLM = LiteLLMBackend()

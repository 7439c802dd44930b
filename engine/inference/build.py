"""The one place where a run's client is assembled from its config, layer by layer.

Order, outermost first: cache (a hit costs nothing, not even a rate-limit slot), retries,
limits (every attempt takes a slot), then the transport. Offline answers are free and exact,
so they are not cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from agora.engine.config import InferenceSection
from agora.engine.inference.cache import CachedClient, ResponseCache
from agora.engine.inference.limits import LimitedClient
from agora.engine.inference.litellm_client import LiteLLMClient
from agora.engine.inference.offline import OfflineClient
from agora.engine.inference.openai_http import OpenAIHTTPClient
from agora.engine.inference.retry import RetryingClient
from agora.engine.protocols import LLMClient, OfflineBehaviour, Policy
from agora.engine.seeding import Seeds


def build_client(
    settings: InferenceSection,
    offline: OfflineBehaviour,
    policies: Sequence[Policy],
    seeds: Seeds,
    environ: Mapping[str, str],
) -> LLMClient:
    if settings.backend == "offline":
        # Always labelled "offline": the behavioural model is never passed off as a model.
        return OfflineClient(offline, policies, settings.offline)
    api_key = environ.get(settings.api_key_env) if settings.api_key_env else None
    transport: LLMClient
    if settings.backend == "litellm":
        transport = LiteLLMClient(
            settings.model,
            settings.endpoints,
            api_key=api_key,
            timeout_s=settings.timeout_s,
            json_mode=settings.json_mode,
            response_format=settings.response_format,
            eject_after=settings.eject_after,
            cooldown_s=settings.eject_cooldown_s,
            connections=settings.concurrency,
            adaptive=settings.adaptive_concurrency,
            initial_concurrency=settings.initial_concurrency,
            deadline_s=settings.request_deadline_s,
        )
    else:
        transport = OpenAIHTTPClient(
            settings.endpoints,
            settings.model,
            api_key=api_key,
            timeout_s=settings.timeout_s,
            connections=settings.concurrency,
            json_mode=settings.json_mode,
            response_format=settings.response_format,
            eject_after=settings.eject_after,
            cooldown_s=settings.eject_cooldown_s,
            adaptive=settings.adaptive_concurrency,
            initial_concurrency=settings.initial_concurrency,
            deadline_s=settings.request_deadline_s,
            batch_max_size=settings.batch_max_size,
            batch_max_wait_ms=settings.batch_max_wait_ms,
            prompt_template=settings.prompt_template,
        )
    limited = LimitedClient(
        transport,
        requests_per_minute=settings.requests_per_minute,
        tokens_per_minute=settings.tokens_per_minute,
    )
    client: LLMClient = RetryingClient(
        limited,
        max_attempts=settings.max_attempts,
        base_delay_s=settings.backoff_base_s,
        max_delay_s=settings.backoff_max_s,
        rng=seeds.rng("retry-jitter"),
    )
    if settings.cache:
        # The format asked for shapes answers (a schema constrains them); each endpoint's
        # fallback from it is found by a probe, so the asked-for format names the variant.
        asked = settings.response_format if settings.json_mode else "none"
        variant = f"{settings.backend}|format={asked}"
        if settings.batch_max_size > 1:
            variant += f"|batch|{settings.prompt_template}"
        # Two servers may give one model name to different weights: answers are kept per set of
        # servers (a fleet's replicas share one key, in any order).
        variant += "|servers=" + ",".join(sorted(settings.endpoints))
        client = CachedClient(client, ResponseCache(Path(settings.cache_dir), variant))
    return client

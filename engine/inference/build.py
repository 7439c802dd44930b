"""The one place where a run's client is assembled from its config, layer by layer.

The transport comes from the backend's plug-in (``engine/inference/backends.py``). Order,
outermost first: request parameters, then, for every layered backend, cache (a hit costs
nothing, not even a rate-limit slot), retries, limits (every attempt takes a slot), then the
transport. Offline answers are free and exact, so they are not layered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from agora.engine.config import InferenceSection, check, load_backend
from agora.engine.inference.backends import BackendContext
from agora.engine.inference.cache import CachedClient, ResponseCache
from agora.engine.inference.limits import LimitedClient
from agora.engine.inference.params import ParamsClient
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
    plugin = load_backend(settings.backend)
    if settings.backend == "offline":
        options = settings.offline
    elif settings.options is None:  # a section built in code, not read by load_run_config
        options = check({}, plugin.config_type, f"inference.{settings.backend}")
    else:
        options = settings.options
    context = BackendContext(offline, tuple(policies), seeds, environ)
    client: LLMClient = plugin.build(settings, options, context)
    if getattr(plugin, "layered", True):
        client = _layered(client, settings, options, seeds, plugin)
    if settings.params:
        client = ParamsClient(client, settings.params)
    return client


def _layered(
    transport: LLMClient,
    settings: InferenceSection,
    options: object,
    seeds: Seeds,
    plugin: object = None,
) -> LLMClient:
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
        # A backend's own options may shape its answers too (the built-in ones take none).
        encoded = msgspec.json.encode(options, order="sorted")
        if encoded != b"{}":
            variant += "|options=" + encoded.decode()
        # What else its answers depend on that no setting says (a backend that reads files
        # by path: their contents), from the backend's plug-in.
        own = getattr(plugin, "cache_variant", None)
        if own is not None:
            variant += "|" + own(settings, options)
        client = CachedClient(client, ResponseCache(Path(settings.cache_dir), variant))
    return client

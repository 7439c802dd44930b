"""The one place where a run's client is assembled from its config."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import InferenceSection
from engine.inference.offline import OfflineClient
from engine.protocols import LLMClient, OfflineBehaviour, Policy


def build_client(
    settings: InferenceSection, offline: OfflineBehaviour, policies: Sequence[Policy]
) -> LLMClient:
    if settings.backend == "offline":
        # Always labelled "offline": the behavioural model is never passed off as a model.
        return OfflineClient(offline, policies, settings.offline)
    raise ValueError(f"unknown backend {settings.backend!r}")  # the config check prevents this

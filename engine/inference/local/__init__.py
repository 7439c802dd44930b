"""The ``local`` backend: a white-box model in this process (``pip install 'agora[local]'``:
torch, transformers, gguf), with steering, directions and patching for mechanism studies.

- ``model.py``: loading the user's weights, chat rendering, scoring integer answers, generating;
- ``client.py``: the transport the engine calls (queued, batched, steered per request);
- ``steering.py``, ``patching.py``, ``layers.py``: forward hooks on the decoder blocks;
- ``directions.py``: mean-difference and SAE-feature directions, saved with their provenance.

Nothing here imports torch until a run uses the backend, so agora installs and runs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.engine.config import ConfigError, InferenceSection
from agora.engine.inference.backends import BackendContext
from agora.engine.inference.local.options import LocalOptions
from agora.engine.protocols import LLMClient


class LocalBackend:
    name = "local"
    config_type = LocalOptions
    # Cache (answers are reused by model path, options, messages, seed and params), retries
    # (none needed: its faults are not retryable) and limits wrap it like any transport.
    layered = True

    def build(self, settings: InferenceSection, options: Any, context: BackendContext) -> LLMClient:
        local: LocalOptions = options
        if not local.model_path:
            raise ConfigError(
                "inference.local.model_path: missing; the model's folder or .gguf file, e.g. "
                "--set inference.local.model_path=models/SmolLM2-135M-Instruct.Q4_1.gguf"
            )
        if not Path(local.model_path).exists():
            raise ConfigError(
                f"inference.local.model_path: {local.model_path} does not exist; point it at "
                "a Hugging Face model folder or a .gguf file"
            )
        from agora.engine.inference.local.client import steering_of
        from agora.engine.inference.local.directions import DirectionError, load

        try:
            steering = steering_of(settings.params or {})
        except ValueError as exc:
            raise ConfigError(f"inference.params.{exc}") from None
        if steering.direction:
            try:
                load(Path(steering.direction))
            except DirectionError as exc:
                raise ConfigError(f"inference.params.steer_direction: {exc}") from None
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            raise ConfigError(
                "inference.backend: 'local' needs torch and transformers; install them with "
                "pip install 'agora[local]'"
            ) from None
        from agora.engine.inference.local.client import LocalClient

        name = (
            settings.model if settings.model not in ("", "offline") else Path(local.model_path).stem
        )
        return LocalClient(local, name)

    def cache_variant(self, settings: InferenceSection, options: Any) -> str:
        """The response cache's key would otherwise name the weights and the direction by
        path: new weights or a new direction written to the same path must not be answered
        from the old ones' cache. The direction's contents are hashed (a small file); the
        weights are fingerprinted by each file's size and modification time (hashing
        gigabytes at every run start would cost more than the cache saves)."""
        from agora.engine.inference.local.directions import file_sha256

        local: LocalOptions = options
        weights = Path(local.model_path)
        files = [weights]
        if weights.is_dir():
            files = sorted(p for p in weights.rglob("*") if p.is_file())
        stamp = ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
        direction = str((settings.params or {}).get("steer_direction") or "")
        steered = file_sha256(Path(direction)) if direction else ""
        return f"weights={stamp}|direction={steered}"


LOCAL = LocalBackend()

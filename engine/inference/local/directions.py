"""Steering directions: the difference of mean residual activations between two sets of prompts
(minimal pairs: the same prompt with one sentence changed), or a sparse autoencoder feature's
decoder row; saved with where they came from.

A direction file is an ``.npz`` with ``layers`` (the block indices), ``vectors`` (one row of the
hidden size per layer) and ``meta``, the JSON of a ``Direction`` (the method, the model's path
and SHA-256, the prompts or the SAE file and feature, the token position, when).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

Vectors = dict[int, npt.NDArray[np.float32]]


class Direction(msgspec.Struct, frozen=True):
    """Where a direction came from (the file's ``meta``)."""

    method: Literal["mean_difference", "sae_feature"]
    layers: list[int]
    hidden_size: int
    model: str = ""
    model_sha256: str = ""
    # The token whose activation is used: the last prompt token (the one the answer follows).
    position: str = "last prompt token"
    positive: list[str] = msgspec.field(default_factory=list)
    negative: list[str] = msgspec.field(default_factory=list)
    source: str = ""  # the SAE file
    feature: int | None = None
    created: str = ""


class DirectionError(ValueError):
    """A direction file or SAE file that cannot be used: one line naming it and the fix."""


def mean_difference(positive: Any, negative: Any) -> npt.NDArray[np.float32]:
    """mean(positive) − mean(negative) over the rows (prompts × hidden, arrays or tensors)."""
    pos = np.asarray(_numpy(positive), dtype=np.float64)
    neg = np.asarray(_numpy(negative), dtype=np.float64)
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1] or not len(pos) * len(neg):
        raise ValueError(
            f"need two non-empty (prompts × hidden) sets of one width, got {pos.shape} and "
            f"{neg.shape}"
        )
    difference: npt.NDArray[np.float32] = (pos.mean(axis=0) - neg.mean(axis=0)).astype(np.float32)
    return difference


def last_token_activations(model: Any, inputs: dict[str, Any], layers: Sequence[int]) -> Vectors:
    """Each layer's residual stream at the last token of each (left-padded) prompt."""
    from agora.engine.inference.local.patching import capture

    seen = capture(model, inputs, layers)
    return {layer: _numpy(states[:, -1, :]).astype(np.float32) for layer, states in seen.items()}


def save(path: Path, direction: Direction, vectors: Mapping[int, Any]) -> None:
    layers = sorted(vectors)
    stacked = np.stack([np.asarray(_numpy(vectors[layer]), dtype=np.float32) for layer in layers])
    meta = msgspec.json.encode(msgspec.structs.replace(direction, layers=layers)).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        np.savez(file, layers=np.asarray(layers, dtype=np.int64), vectors=stacked, meta=meta)


def load(path: Path) -> tuple[Direction, Vectors]:
    """A saved direction; ``DirectionError`` naming the file when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            layers = [int(v) for v in data["layers"]]
            vectors = np.asarray(data["vectors"], dtype=np.float32)
            meta = msgspec.json.decode(str(data["meta"]), type=Direction)
    except FileNotFoundError:
        raise DirectionError(f"{path}: no such direction file; make one first") from None
    except (OSError, KeyError, ValueError, TypeError, msgspec.DecodeError) as exc:
        raise DirectionError(
            f"{path}: not a direction file (an .npz of layers, vectors, meta): {exc}"
        ) from None
    if vectors.shape != (len(layers), meta.hidden_size):
        raise DirectionError(
            f"{path}: vectors are {vectors.shape}, expected {len(layers)} × {meta.hidden_size}"
        )
    return meta, {layer: vectors[k] for k, layer in enumerate(layers)}


def sae_feature(path: Path, feature: int, layer: int | None = None) -> tuple[Direction, Vectors]:
    """An SAE feature's decoder row as a direction: ``W_dec[feature]`` from a sae-lens folder
    (``sae_weights.safetensors`` and ``cfg.json``), a ``.safetensors`` file or an ``.npz``
    with ``W_dec`` (features × hidden). ``layer``: the block after which to steer; unset, it
    comes from the folder's ``cfg.json`` (``sae_layer``)."""
    weights, config = path, {}
    if path.is_dir():
        weights = path / "sae_weights.safetensors"
        if (path / "cfg.json").exists():
            try:
                config = json.loads((path / "cfg.json").read_text())
            except (OSError, ValueError) as exc:
                raise DirectionError(f"{path / 'cfg.json'}: not readable JSON ({exc})") from None
            if not isinstance(config, dict):
                raise DirectionError(f"{path / 'cfg.json'}: not a JSON object of settings")
    try:
        if weights.suffix == ".npz":
            with np.load(weights, allow_pickle=False) as data:
                decoder = np.asarray(data["W_dec"], dtype=np.float32)
        else:
            from safetensors.numpy import load_file

            decoder = np.asarray(load_file(str(weights))["W_dec"], dtype=np.float32)
    except FileNotFoundError:
        raise DirectionError(f"{weights}: no such SAE file") from None
    except ImportError:
        raise
    except Exception as exc:  # safetensors' own errors are plain Exceptions
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DirectionError(f"{weights}: no W_dec (features × hidden) in it: {first}") from None
    if decoder.ndim != 2:
        raise DirectionError(
            f"{weights}: W_dec has shape {decoder.shape}; expected features × hidden"
        )
    if not 0 <= feature < decoder.shape[0]:
        raise DirectionError(
            f"{weights}: feature {feature} is not among its {decoder.shape[0]} features"
        )
    where = layer if layer is not None else sae_layer(config, path)
    meta = Direction(
        "sae_feature",
        [int(where)],
        int(decoder.shape[1]),
        position="",  # a decoder row: no token's activation
        source=str(path),
        feature=feature,
    )
    return meta, {int(where): decoder[feature]}


_RESIDUAL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")


def sae_layer(config: Mapping[str, Any], path: Path) -> int:
    """The block whose output a sae-lens SAE reads, from its ``cfg.json``: ``hook_name``
    ``blocks.N.hook_resid_post`` is block N's output, ``blocks.N.hook_resid_pre`` block
    N − 1's (the same stream, before block N); without a hook name, ``hook_layer``. sae-lens
    6 keeps both under ``meta``."""
    meta = config.get("meta")
    if isinstance(meta, Mapping) and "hook_name" not in config and "hook_layer" not in config:
        config = meta
    name = config.get("hook_name")
    if isinstance(name, str):
        match = _RESIDUAL_HOOK.match(name)
        if match is None:
            raise DirectionError(
                f"{path}: its SAE reads {name!r}, not the residual stream; give --layer to "
                "steer along its decoder row after a block anyway"
            )
        block = int(match.group(1))
        if match.group(2) == "post":
            return block
        if block == 0:
            raise DirectionError(
                f"{path}: its SAE reads the embeddings (blocks.0.hook_resid_pre), which no "
                "block outputs; give --layer"
            )
        return block - 1
    layer = config.get("hook_layer")
    if isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0:
        return layer
    raise DirectionError(f"{path}: it names no layer (cfg.json hook_name); give --layer")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a model file, or of a model folder's files in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().to("cpu").float().numpy()
    return np.asarray(value)

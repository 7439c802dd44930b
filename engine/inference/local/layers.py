"""Where a causal language model keeps its decoder blocks, and their residual-stream output.

Steering, capturing and patching all act on the output of a decoder block (the residual
stream after it). transformers' decoder layers return either the hidden states or a tuple
whose first item they are, depending on the model and the library's version: ``hidden`` and
``replace_hidden`` read and write either form.
"""

from __future__ import annotations

from typing import Any

# Attribute paths to the list of decoder blocks, by architecture family.
_BLOCK_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers")


def decoder_layers(model: Any) -> list[Any]:
    """The model's decoder blocks, first to last. ``ValueError`` for an architecture whose
    blocks it cannot find."""
    for path in _BLOCK_PATHS:
        found: Any = model
        for name in path.split("."):
            found = getattr(found, name, None)
            if found is None:
                break
        if found is not None:
            return list(found)
    raise ValueError(
        f"cannot find the decoder blocks of a {type(model).__name__} (looked at "
        f"{', '.join(_BLOCK_PATHS)})"
    )


def check_layers(model: Any, layers: list[int]) -> list[int]:
    count = len(decoder_layers(model))
    bad = [layer for layer in layers if not 0 <= layer < count]
    if bad:
        raise ValueError(f"layers {bad} are not among the model's {count} (0 … {count - 1})")
    return layers


def hidden(output: Any) -> Any:
    """The residual stream a decoder block's forward returned."""
    return output[0] if isinstance(output, tuple) else output


def replace_hidden(output: Any, new: Any) -> Any:
    """``output`` with its residual stream replaced by ``new``, in the same form."""
    if isinstance(output, tuple):
        return (new, *output[1:])
    return new

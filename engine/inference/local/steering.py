"""Steering: add strength × a direction to the residual stream at chosen layers while the model
runs (a forward hook per decoder block), and take the hooks off afterwards, whatever happens.

``strength`` is in units of the direction as stored: a mean-difference direction at strength
1 adds the whole difference between the two stances' mean activations; −1 subtracts it. The
vector is added at every position (prompt and generated tokens), as activation-addition
steering usually does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from agora.engine.inference.local.layers import check_layers, decoder_layers, hidden, replace_hidden


@contextmanager
def steered(model: Any, vectors: Mapping[int, Any], strength: float) -> Iterator[None]:
    """While inside, block ``layer``'s output gets ``strength * vectors[layer]`` added (a
    tensor of the hidden size, on the model's device and dtype). Strength 0 or no vectors
    adds no hook at all."""
    if strength == 0 or not vectors:
        yield
        return
    blocks = decoder_layers(model)
    check_layers(model, sorted(vectors))
    handles = []
    try:
        for layer, vector in sorted(vectors.items()):
            shift = strength * vector

            def hook(module: Any, inputs: Any, output: Any, shift: Any = shift) -> Any:
                return replace_hidden(output, hidden(output) + shift)

            handles.append(blocks[layer].register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def hook_count(model: Any) -> int:
    """How many forward hooks the decoder blocks hold (0 when nothing is steering them)."""
    return sum(len(block._forward_hooks) for block in decoder_layers(model))

"""Activation capture and patching at a decoder block's output (the residual stream).

``capture`` records what chosen blocks output for a batch; ``patched`` makes a block output, at
chosen positions, what another run (the donor) output there. Minimal-pair prompts differ in
one sentence, so their lengths may differ: positions are counted from the end (−1 the last
token) and the prompts left-padded, so the shared tail lines up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from agora.engine.inference.local.layers import check_layers, decoder_layers, hidden, replace_hidden


def capture(model: Any, inputs: dict[str, Any], layers: Sequence[int]) -> dict[int, Any]:
    """Each block's output for ``inputs`` (batch × positions × hidden), detached."""
    import torch

    blocks = decoder_layers(model)
    check_layers(model, list(layers))
    seen: dict[int, Any] = {}
    handles = []
    try:
        for layer in layers:

            def hook(module: Any, args: Any, output: Any, layer: int = layer) -> None:
                seen[layer] = hidden(output).detach().clone()

            handles.append(blocks[layer].register_forward_hook(hook))
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@contextmanager
def patched(model: Any, layer: int, donor: Any, positions: Sequence[int]) -> Iterator[None]:
    """While inside, block ``layer`` outputs ``donor``'s values (batch × positions × hidden,
    from ``capture`` on the donor prompts) at ``positions`` of each sequence."""
    blocks = decoder_layers(model)
    check_layers(model, [layer])
    index = list(positions)

    def hook(module: Any, args: Any, output: Any) -> Any:
        states = hidden(output).clone()
        states[:, index, :] = donor[:, index, :].to(states.dtype)
        return replace_hidden(output, states)

    handle = blocks[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()

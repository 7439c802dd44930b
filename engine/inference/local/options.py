"""``[inference.local]``: where the weights are and how to run them (checked before the run)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class LocalOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # A Hugging Face model folder or a GGUF file (transformers dequantizes it).
    model_path: str = ""
    device: str = "cpu"  # "cuda", "cuda:1", "mps", …
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # Requests answered together (greedy free text is batched, left-padded).
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 8
    # "score": a one-integer answer is chosen by scoring every allowed value; "generate":
    # every answer is free text (and may be invalid).
    answer: Literal["score", "generate"] = "score"
    # An integer field with more allowed values than this is generated, not scored.
    max_choices: Annotated[int, msgspec.Meta(ge=2)] = 1001

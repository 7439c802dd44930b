"""A seeded answer that satisfies a JSON schema: the mock server's reply to a prompt no world
responder claims, so any world's structured asks get schema-valid answers over real HTTP.

Covers the subset answer schemas use (``object`` with ``properties``/``required``, ``enum``,
``const``, ``integer``/``number`` with bounds, ``string`` with ``minLength``/``maxLength``,
``boolean``, ``array`` with ``items`` and ``minItems``/``maxItems``, ``anyOf``/``oneOf``);
anything else gets ``null``. Drawn from ``rng``, so the same request gets the same answer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_WORDS = ("this", "is", "a", "mock", "answer", "drawn", "from", "the", "schema", "asked")
_MAX_DEPTH = 8


def answer_from_schema(schema: Any, rng: np.random.Generator, depth: int = 0) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options = schema["enum"]
        return options[int(rng.integers(len(options)))]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = schema[key]
            return answer_from_schema(options[int(rng.integers(len(options)))], rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: answer_from_schema(sub, rng, depth + 1)
            for name, sub in properties.items()
            if isinstance(name, str)
        }
    if kind == "integer":
        low, high = _bounds(schema, -100, 100, step=1.0)
        return int(rng.integers(math.ceil(low), math.floor(high) + 1))
    if kind == "number":
        low, high = _bounds(schema, -100, 100, step=0.001)
        return round(float(low + rng.random() * (high - low)), 3)
    if kind == "boolean":
        return bool(rng.integers(2))
    if kind == "string":
        return _text(schema, rng)
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, int(schema.get("maxItems", low + 2)))
        count = int(rng.integers(low, high + 1))
        return [answer_from_schema(schema.get("items", {}), rng, depth + 1) for _ in range(count)]
    return None


def _bounds(schema: dict[str, Any], low: float, high: float, step: float) -> tuple[float, float]:
    """The inclusive range to draw from; an exclusive bound moves in by ``step`` (1 for an
    integer, the rounding's 0.001 for a number), so it is never drawn."""
    lo = float(schema.get("minimum", low))
    hi = float(schema.get("maximum", high))
    if "minimum" not in schema and "exclusiveMinimum" in schema:
        lo = float(schema["exclusiveMinimum"]) + step
    if "maximum" not in schema and "exclusiveMaximum" in schema:
        hi = float(schema["exclusiveMaximum"]) - step
    if "minimum" not in schema and "exclusiveMinimum" not in schema:
        lo = min(lo, hi)
    if "maximum" not in schema and "exclusiveMaximum" not in schema:
        hi = max(hi, lo)
    return lo, max(lo, hi)


def _text(schema: dict[str, Any], rng: np.random.Generator) -> str:
    shortest = int(schema.get("minLength", 1))
    longest = int(schema.get("maxLength", 200))
    words = [_WORDS[int(i)] for i in rng.integers(len(_WORDS), size=12)]
    text = " ".join(words)
    while len(text) < shortest:
        text += " " + text
    return text[: max(shortest, min(longest, len(text)))]

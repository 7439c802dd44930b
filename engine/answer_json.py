"""Find the JSON object in a model's answer, however the model wrapped it.

Models add prose, code fences, ``<think>`` blocks, trailing commas or Python-style quotes. This
finds the answer object without guessing its content: when nothing usable is there it raises
``AnswerFormatError`` with the reason, and the caller records the answer as invalid.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import msgspec

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_decode = msgspec.json.Decoder().decode


class AnswerFormatError(ValueError):
    pass


def extract_json_object(text: str) -> dict[str, Any]:
    """Return the answer's JSON object; when several are present, the last one is the answer."""
    if text.startswith("{"):
        # The common case, a bare object, without a regex pass over the text.
        try:
            value = _decode(text)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
    stripped = _THINK.sub("", text).strip()
    if not stripped:
        raise AnswerFormatError("empty answer")
    direct = _try(stripped)
    if isinstance(direct, dict):
        return direct
    candidates = [m.group(1).strip() for m in _FENCE.finditer(stripped)]
    candidates.extend(_balanced_objects(stripped))
    if not candidates:
        raise AnswerFormatError("no JSON object in the answer")
    for candidate in reversed(candidates):
        value = _try(candidate)
        if isinstance(value, dict):
            return value
    raise AnswerFormatError("the answer's JSON object is malformed")


def _try(candidate: str) -> Any:
    try:
        return _decode(candidate)
    except msgspec.DecodeError:
        pass
    try:
        return _decode(_TRAILING_COMMA.sub(r"\1", candidate))
    except msgspec.DecodeError:
        pass
    if candidate.startswith("{"):
        try:
            # Python-dict style answers ({'action': 'stay'}) are common from smaller models.
            value = ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        return value if isinstance(value, dict) else None
    return None


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span, honouring strings, in order of appearance."""
    spans: list[str] = []
    depth = 0
    start = -1
    in_string: str | None = None
    escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == in_string:
                in_string = None
            continue
        if char in "\"'" and depth > 0:
            in_string = char
        elif char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : index + 1])
    return spans

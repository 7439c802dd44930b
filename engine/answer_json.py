"""Find the JSON object in a model's answer, however the model wrapped it.

Models add prose, code fences, ``<think>`` blocks, trailing commas or Python-style quotes. This
finds the answer object without guessing its content: when nothing usable is there it raises
``AnswerFormatError`` with the reason, and the caller records the answer as invalid.

Whatever text a server sends, the work is bounded and what comes out can be logged: answers over
``MAX_ANSWER_CHARS`` (outside ``<think>`` blocks) are refused before any parsing, nothing nested
deeper than ``MAX_DEPTH`` is decoded, at most ``MAX_CANDIDATES`` embedded objects are tried, and
an answer holding a lone surrogate (which no UTF-8 log line can hold) is refused.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from typing import Any

import msgspec
import numpy as np

# Far above any answer a decision prompt asks for (a few hundred characters; 512 tokens is
# about 2 KB), and small enough that the slowest path below stays within a few milliseconds.
MAX_ANSWER_CHARS = 65_536
# An answer object is two or three levels deep; msgspec, ``ast`` and ``str()`` of the result
# all recurse, and 20,000 levels exhaust the interpreter's stack.
MAX_DEPTH = 64
# The answer is the last object; a model's drafts before it are few. Thousands of ``{}`` spans
# are garbage, and trying each one is what made a 1 MB answer cost seconds.
MAX_CANDIDATES = 8
LONE_SURROGATE = "answer holds invalid unicode (lone surrogate)"

_THINK_OPEN = re.compile(r"<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
# No ``\s*`` before the lazy group: with it, a fence followed by a long run of spaces and no
# closing fence backtracks quadratically. The group is stripped instead.
_FENCE = re.compile(r"```(?:json|JSON)?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
# What the balanced-object scan stops at inside an object; everything else is skipped in C.
_STRUCTURE = re.compile(r"""[{}"']""")
# The rest of a string after its opening quote, up to its closing quote or the text's end; a
# backslash hides the character after it.
_STRING_REST = {
    '"': re.compile(r'(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.S),
    "'": re.compile(r"(?:[^'\\]++|\\.?)*+(?:'|\Z)", re.S),
}
# A JSON string, or an unterminated one to the end of the text (as a decoder reads it): each
# quote that opens one ends in a match, so the scan never restarts from every later quote.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_STEPS = np.zeros(256, dtype=np.int32)
_JSON_STEPS[[ord("{"), ord("[")]] = 1
_JSON_STEPS[[ord("}"), ord("]")]] = -1
_STEPS = _JSON_STEPS.copy()
_STEPS[ord("(")], _STEPS[ord(")")] = 1, -1
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class AnswerFormatError(ValueError):
    pass


def extract_json_object(text: str) -> dict[str, Any]:
    """Return the answer's JSON object; when several are present, the last one is the answer."""
    if len(text) > MAX_ANSWER_CHARS:
        text = _over_limit(text)
    if not text.isascii() and has_lone_surrogate(text):
        raise AnswerFormatError(LONE_SURROGATE)
    if text.startswith("{") and (
        text.count("{") + text.count("[") <= MAX_DEPTH or not _too_deep(text, json_strings=True)
    ):
        # The common case, a bare object, without a regex pass over the text (and, with few
        # brackets, without the depth scan).
        try:
            value = _decode(text)
        except (msgspec.DecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
    stripped = strip_think(text).strip()
    if not stripped:
        raise AnswerFormatError("empty answer")
    # Why a candidate was refused (too deep, a lone surrogate) beats the generic reasons below.
    refused: str | None = None
    try:
        direct = _try(stripped)
    except AnswerFormatError as exc:
        direct, refused = None, str(exc)
    if isinstance(direct, dict):
        return direct
    candidates = [m.group(1).strip() for m in _FENCE.finditer(stripped)]
    candidates.extend(_balanced_objects(stripped, MAX_CANDIDATES))
    if not candidates:
        raise AnswerFormatError(refused or "no JSON object in the answer")
    for candidate in reversed(candidates[-MAX_CANDIDATES:]):
        try:
            value = _try(candidate)
        except AnswerFormatError as exc:
            refused = str(exc)
            continue
        if isinstance(value, dict):
            return value
    raise AnswerFormatError(refused or "the answer's JSON object is malformed")


def extract_text(text: str) -> str:
    """A prose answer (a free-text ask): without ``<think>`` blocks and surrounding space,
    within ``MAX_ANSWER_CHARS``, not empty; else ``AnswerFormatError`` saying why."""
    answer = _over_limit(text) if len(text) > MAX_ANSWER_CHARS else strip_think(text)
    answer = answer.strip()
    if not answer:
        raise AnswerFormatError("empty answer")
    return answer


def _over_limit(text: str) -> str:
    """The answer without its ``<think>`` blocks, if that is within the limit; else refused.

    Reasoning models may think at length before a short answer: that answer is still read.
    """
    answer = strip_think(text)
    if len(answer) <= MAX_ANSWER_CHARS:
        return answer
    where = "" if len(answer) == len(text) else " outside <think> blocks"
    raise AnswerFormatError(
        f"answer is {len(answer)} characters{where}, over the {MAX_ANSWER_CHARS}-character limit"
    )


def strip_think(text: str) -> str:
    """``text`` without its ``<think>…</think>`` blocks, in one pass.

    The regex ``<think>.*?</think>`` rescans to the end from every unclosed ``<think>``: a text
    of many of them took seconds. Once one opening has no closing after it, none later has.
    """
    if "<" not in text:
        return text
    kept: list[str] = []
    position = 0
    while (opening := _THINK_OPEN.search(text, position)) is not None:
        closing = _THINK_CLOSE.search(text, opening.end())
        if closing is None:
            break
        kept.append(text[position : opening.start()])
        position = closing.end()
    if not kept:
        return text
    kept.append(text[position:])
    return "".join(kept)


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a code point UTF-8 cannot encode (half of a surrogate pair)."""
    if text.isascii():  # the common case, in C and without a copy
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so a log line can hold it."""
    return _SURROGATE.sub("\ufffd", text) if has_lone_surrogate(text) else text


def _too_deep(candidate: str, *, json_strings: bool) -> bool:
    """Whether ``candidate`` may nest deeper than ``MAX_DEPTH``, found without recursing.

    With ``json_strings`` brackets inside JSON strings are not counted (msgspec reads only
    double-quoted strings); without, every bracket counts, which can only overstate the depth.
    """
    opened = candidate.count("{") + candidate.count("[")
    if not json_strings:
        opened += candidate.count("(")  # Python tuples nest too
    if opened <= MAX_DEPTH:  # cannot nest deeper than it opens: no scan for ordinary answers
        return False
    text = _JSON_STRING.sub("", candidate) if json_strings else candidate
    # The deepest running count of openings less closings, summed in an array: brackets are
    # ASCII, and UTF-8 never puts an ASCII byte inside a longer character.
    steps = (_JSON_STEPS if json_strings else _STEPS)[
        np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    ]
    return bool(steps.size) and int(np.cumsum(steps).max()) > MAX_DEPTH


def _try(candidate: str) -> Any:
    """The candidate's value, or None; raises ``AnswerFormatError`` when it must not be read."""
    if _too_deep(candidate, json_strings=True):
        raise AnswerFormatError(f"answer nests deeper than {MAX_DEPTH} levels")
    try:
        return _decode(candidate)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return _decode(_TRAILING_COMMA.sub(r"\1", candidate))
    except (msgspec.DecodeError, RecursionError):
        pass
    if candidate.startswith("{"):
        # Python-dict style answers ({'action': 'stay'}) are common from smaller models.
        return _python_dict(candidate)
    return None


def _python_dict(candidate: str) -> dict[str, Any] | None:
    if _too_deep(candidate, json_strings=False):
        raise AnswerFormatError(f"answer nests deeper than {MAX_DEPTH} levels")
    try:
        value = ast.literal_eval(candidate)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    try:
        # Through JSON and back: tuples and sets become lists, and what JSON cannot hold
        # (complex numbers, ``...``, tuple keys, a '\ud800' escape) is refused here, not
        # when the log is written.
        normal = _decode(_encode(value))
    except UnicodeEncodeError:
        raise AnswerFormatError(LONE_SURROGATE) from None
    except (msgspec.MsgspecError, TypeError, ValueError, OverflowError, RecursionError):
        return None
    return normal if isinstance(normal, dict) else None


def _balanced_objects(text: str, keep: int) -> list[str]:
    """The last ``keep`` top-level ``{...}`` spans, honouring strings, in order of appearance."""
    spans: deque[tuple[int, int]] = deque(maxlen=keep)  # only the last few are ever tried
    depth = 0
    start = -1
    string_end = -1  # inside an object a quote opens a string, skipped whole up to here
    for match in _STRUCTURE.finditer(text):
        index = match.start()
        if index < string_end:
            continue
        char = text[index]
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}":
            if depth > 0:
                depth -= 1
                if depth == 0:
                    spans.append((start, index + 1))
        elif depth > 0:  # a quote; outside objects quotes are prose (apostrophes)
            string = _STRING_REST[char].match(text, index + 1)
            string_end = string.end() if string is not None else len(text)
    return [text[begin:end] for begin, end in spans]

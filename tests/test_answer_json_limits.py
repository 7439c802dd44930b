"""The answer extractor's bounds: size, depth, candidates tried, and what it hands back.

No test here times anything: the work is shown bounded by what the extractor says and by how
many candidates it tries.
"""

from __future__ import annotations

import random
import re

import pytest

import agora.engine.answer_json as answer_json
from agora.engine.answer_json import (
    LONE_SURROGATE,
    MAX_ANSWER_CHARS,
    MAX_CANDIDATES,
    MAX_DEPTH,
    AnswerFormatError,
    extract_json_object,
    has_lone_surrogate,
    replace_lone_surrogates,
    strip_think,
)

GOOD = '{"action": "stay", "reasoning": "ok"}'


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_a_megabyte_answer_is_refused_by_its_size_before_any_parsing() -> None:
    text = "{a}" * 350_000
    with pytest.raises(AnswerFormatError) as caught:
        extract_json_object(text)
    assert str(caught.value) == (
        f"answer is {len(text)} characters, over the {MAX_ANSWER_CHARS}-character limit"
    )


def test_the_size_limit_leaves_think_blocks_out() -> None:
    thinking = "<think>" + "x" * (2 * MAX_ANSWER_CHARS) + "</think>"
    assert extract_json_object(thinking + GOOD) == {"action": "stay", "reasoning": "ok"}
    outside = "y" * (MAX_ANSWER_CHARS + 1)
    with pytest.raises(AnswerFormatError, match="characters outside <think> blocks, over the"):
        extract_json_object(thinking + outside + GOOD)


def test_only_the_last_few_candidates_are_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []
    real = answer_json._try

    def counting(candidate: str) -> object:
        tried.append(candidate)
        return real(candidate)

    monkeypatch.setattr(answer_json, "_try", counting)
    with pytest.raises(AnswerFormatError, match="malformed"):
        extract_json_object("{a}" * 20_000)  # 20,000 candidates, each malformed
    assert len(tried) == 1 + MAX_CANDIDATES  # the whole text, then the last few
    tried.clear()
    # The answer is still the last object, after drafts and many stray ones.
    assert extract_json_object("{a}" * 5_000 + GOOD)["action"] == "stay"
    assert len(tried) == 2


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (_nested(MAX_DEPTH), True),
        (_nested(MAX_DEPTH + 1), False),
        ('{"a":' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}", True),
        ('{"a":' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", False),
        ("prose " + _nested(MAX_DEPTH + 1), False),
        ("[" * 30_000, False),  # never closed: a decoder would still recurse into every one
        ("{'a': " + "(" * MAX_DEPTH + ")" * MAX_DEPTH + "}", False),  # tuples nest too
        # Brackets inside strings are text, however many.
        ('{"action": "stay", "reasoning": "' + "[{" * 5_000 + '"}', True),
        ('{"action": "stay", "reasoning": "a \\" quote ' + "[" * 5_000 + '"}', True),
    ],
)
def test_nesting_is_refused_past_the_limit_without_recursing(text: str, ok: bool) -> None:
    if ok:
        assert isinstance(extract_json_object(text), dict)
    else:
        with pytest.raises(AnswerFormatError, match=f"nests deeper than {MAX_DEPTH} levels"):
            extract_json_object(text)


@pytest.mark.parametrize(
    "text",
    [
        r'{"action": "stay", "reasoning": "a\ud800b"}',  # msgspec refuses it; ast would not
        "{'action': 'stay', 'reasoning': '\\udfff'}",
        "{'action': 'stay', 'reasoning': '\\U0000d800'}",
        '{"action": "stay", "reasoning": "a\ud800b"}',  # the code point itself
        "I pick \udc80 " + GOOD,
    ],
)
def test_a_lone_surrogate_is_refused_escaped_or_not(text: str) -> None:
    with pytest.raises(AnswerFormatError, match=re.escape(LONE_SURROGATE)):
        extract_json_object(text)


def test_surrogate_helpers() -> None:
    assert not has_lone_surrogate("plain") and not has_lone_surrogate("é 😀")
    assert has_lone_surrogate("a\ud800") and has_lone_surrogate("\udfff")
    assert replace_lone_surrogates("a\ud800b\udc00") == "a\ufffdb\ufffd"
    text = "é 😀"
    assert replace_lone_surrogates(text) is text


def test_python_style_answers_come_back_as_json_values() -> None:
    value = extract_json_object("{'action': 'stay', 'reasoning': 'x', 't': (1, 2), 's': {3}, 4: 5}")
    assert value == {"action": "stay", "reasoning": "x", "t": [1, 2], "s": [3], "4": 5}
    for text in ("{'a': 1j}", "{'a': ...}", "{(1, 2): 'a'}", "{[]}", "{'a': {}.keys()}"):
        with pytest.raises(AnswerFormatError, match="malformed"):
            extract_json_object(text)


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


def test_strip_think_does_what_the_regex_did() -> None:
    rng = random.Random(5)
    pieces = ["<think>", "</think>", "<THINK>", "</Think>", "a", "{}", "<", "\n"]
    for _ in range(5_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert strip_think(text) == _THINK.sub("", text), text


def _reference_spans(text: str) -> list[str]:
    """The scan the extractor used before it skipped strings in C, character by character."""
    spans: list[str] = []
    depth, start, in_string, escaped = 0, -1, "", False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == in_string:
                in_string = ""
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


def test_the_object_scan_finds_the_spans_the_character_scan_found() -> None:
    rng = random.Random(11)
    alphabet = list("{}\"'\\ a1:,[]")
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        expected = _reference_spans(text)[-MAX_CANDIDATES:]
        assert answer_json._balanced_objects(text, MAX_CANDIDATES) == expected, text

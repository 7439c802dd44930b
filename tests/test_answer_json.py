import pytest

from agora.engine.answer_json import AnswerFormatError, extract_json_object


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"action": "stay", "reasoning": "ok"}', {"action": "stay", "reasoning": "ok"}),
        (
            'Sure!\n```json\n{"action": "move", "district": 3}\n```\nDone.',
            {"action": "move", "district": 3},
        ),
        ('I think {"action": "stay"} is right.', {"action": "stay"}),
        ('<think>maybe {"action": "move"}</think>{"action": "stay"}', {"action": "stay"}),
        ('{"action": "stay", "likes": [1, 2,],}', {"action": "stay", "likes": [1, 2]}),
        (
            "{'action': 'stay', 'reasoning': \"don't move\"}",
            {"action": "stay", "reasoning": "don't move"},
        ),
        ('draft {"action": "move"} final {"action": "stay"}', {"action": "stay"}),
        (
            '{"reasoning": "a } inside a string", "action": "stay"}',
            {"reasoning": "a } inside a string", "action": "stay"},
        ),
        ('{"a": {"nested": 1}}', {"a": {"nested": 1}}),
    ],
)
def test_finds_the_answer_object(text, expected):
    assert extract_json_object(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty answer"),
        ("   ", "empty answer"),
        ("I will stay where I am.", "no JSON object"),
        ('{"action": "stay"', "no JSON object"),
        ('{"action": stay}', "malformed"),
        ("[1, 2, 3]", "no JSON object"),
    ],
)
def test_says_why_when_there_is_no_usable_object(text, reason):
    with pytest.raises(AnswerFormatError, match=reason):
        extract_json_object(text)

"""Grounded-theory coding: the codebook and its rule coder, axial and selective coding, the
per-group frequencies, agreement between coders, and the LLM judge against the project's mock
server on 127.0.0.1 (re-asks, invalid answers, the response cache)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from aiohttp import web

from agora.engine.analysis.codebook import (
    Codebook,
    CodebookCoder,
    CodebookError,
    OpenCode,
    core_category,
    load_codebook,
)
from agora.engine.analysis.coding import (
    CodingReport,
    code_agreement,
    code_reasonings,
    sample_reasonings,
)
from agora.engine.analysis.judge import (
    OFFLINE_JUDGE_LABEL,
    JudgeCoder,
    load_judge_prompts,
    parse_judgement,
)
from agora.engine.analysis.stats import cohen_kappa
from agora.engine.config import InferenceSection, OfflineSection
from agora.engine.inference.mock_server import MockServer, MockSettings
from agora.engine.records import Invalid, Message
from tests.helpers import REPO

CITY_CODEBOOK = REPO / "worlds" / "schelling_city" / "codebook.toml"

# A small codebook whose rules are easy to count by hand.
TINY = """
name = "tiny"
[[categories]]
name = "self"
description = "for oneself"
[[categories]]
name = "city"
description = "for the city"

[[codes]]
name = "me"
category = "self"
description = "says 'for me'"
phrases = ["for me"]
[[codes]]
name = "comfort"
category = "self"
description = "mentions comfort"
patterns = ['\\bcomfort\\w*']
[[codes]]
name = "city"
category = "city"
description = "says 'for the city'"
phrases = ["for the city"]
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Codebook:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return load_codebook(path)


@pytest.fixture(scope="module")
def city() -> Codebook:
    return load_codebook(CITY_CODEBOOK)


# ---- the codebook and the rule coder -----------------------------------------------------


# What the offline rule agents and the mock server write (worlds/schelling_city/offline.py,
# mock.py), then what a model might.
CITY_TEXTS = [
    (
        "I live in district 3 with satisfaction 0.920. No other district would make me more "
        "satisfied, so I stay.",
        {"own_utility", "avoid_loss"},
    ),
    (
        "Moving from district 2 to district 3 raises my satisfaction from 0.900 to 1.000; the "
        "city's welfare changes by +1.640. My own comfort comes first.",
        {"own_utility"},
    ),
    (
        "I live in district 3 with satisfaction 0.920. No move would raise the city's total "
        "welfare enough, so staying serves everyone best.",
        {"system_utility"},
    ),
    (
        "Moving from district 3 to district 5 changes the city's welfare by +0.400, even though "
        "my own satisfaction changes by -0.080. The common good comes first.",
        {"system_utility", "sacrifice"},
    ),
    (
        "The posts on the board ask us to think of the whole city. Moving from district 3 to "
        "district 5 changes the city's welfare by +0.400 and my own satisfaction by -0.080; I "
        "will follow the board's advice this time.",
        {"board_norm", "system_utility"},
    ),
    (
        "I live in district 3 with satisfaction 0.920. Many others are deciding at the same "
        "time, so I wait this round and see how the districts settle before I move.",
        {"anticipate_others", "wait_and_see"},
    ),
    (
        "District 4 changes my satisfaction by +0.040 and the city's welfare by -0.300; "
        "I come first.",
        {"own_utility"},
    ),
    ("Nothing beats staying in district 3 for the city.", {"system_utility"}),
    ("Nothing beats staying in district 3 for me.", {"own_utility", "avoid_loss"}),
    (
        "District 7 is at density 0.76 and will probably become overcrowded if everyone moves "
        "there, so I keep my place for now.",
        {"overshoot_caution", "anticipate_others", "wait_and_see"},
    ),
    (
        "Several residents on the message board say we should aim for half-full districts so "
        "the distribution is fair; I'll do my part even if it costs me a little.",
        {"board_norm", "optimal_density", "fairness", "reciprocity"},
    ),
    (
        "I don't mind a crowded district as long as my utility would increase, and most "
        "residents are moving to district 2 anyway.",
        {"crowding_preference", "own_utility", "conformity"},
    ),
    ("District 6 has 25 residents.", set()),
]


@pytest.mark.parametrize(("text", "expected"), CITY_TEXTS)
def test_city_codebook_codes_rule_agents_and_model_language(city, text, expected):
    assert set(CodebookCoder(city).code_text(text)) == expected


def test_rules_are_case_insensitive_on_whole_words(tiny):
    coder = CodebookCoder(tiny)
    assert coder.code_text("Best FOR ME.") == ("me",)
    assert coder.code_text("for  \n me") == ("me",)  # any run of spaces between words
    assert coder.code_text("information for meals") == ()  # "me" inside "meals"
    assert coder.code_text("Comfortable for the city, for me") == ("me", "comfort", "city")


def test_codebook_errors_name_the_entry(tmp_path):
    def load(text: str) -> Codebook:
        path = tmp_path / "bad.toml"
        path.write_text(text)
        return load_codebook(path)

    with pytest.raises(CodebookError, match="category 'nowhere' is not defined"):
        load(TINY.replace('category = "city"', 'category = "nowhere"'))
    with pytest.raises(CodebookError, match="not a regular expression"):
        load(TINY.replace("'\\bcomfort\\w*'", "'(unclosed'"))
    with pytest.raises(CodebookError, match="defined twice"):
        load(TINY.replace('name = "comfort"', 'name = "me"'))
    with pytest.raises(CodebookError, match="unknown field"):
        load(TINY + '\nextra = "x"\n')
    with pytest.raises(CodebookError, match="no such codebook"):
        load_codebook(tmp_path / "missing.toml")


def test_city_codebook_holds_the_studys_themes(city):
    assert city.category_names == (
        "self_interest",
        "collective_welfare",
        "social_influence",
        "strategic_reasoning",
    )
    assert len(city.codes) >= 12
    assert all(code.description.strip() for code in city.codes)


def test_axial_coding_maps_codes_to_categories(city):
    assert city.categories_of(["own_utility", "avoid_loss"]) == {"self_interest"}
    assert city.categories_of(["sacrifice", "board_norm", "wait_and_see"]) == {
        "collective_welfare",
        "social_influence",
        "strategic_reasoning",
    }
    assert city.categories_of([]) == frozenset()


def test_selective_coding_picks_the_largest_share_and_breaks_ties_by_order():
    order = ["self", "city", "board"]
    core = core_category({"self": 3, "city": 5, "board": 1}, reasonings=10, order=order)
    assert (core.category, core.share, core.runner_up, core.runner_up_share) == (
        "city",
        0.5,
        "self",
        0.3,
    )
    assert core.reason is None
    tie = core_category({"board": 4, "city": 4}, reasonings=8, order=order)
    assert (tie.category, tie.runner_up) == ("city", "board")
    assert "tie" in (tie.reason or "")
    assert core_category({}, reasonings=0, order=order).category is None
    assert core_category({}, reasonings=5, order=order).reason == (
        "no reasoning carries any category"
    )


# ---- frequencies per group ---------------------------------------------------------------


def tiny_frame() -> pl.DataFrame:
    # Group (A, on): 4 reasonings; (A, off): 3 (+ 1 blank); (B, on): 2.
    rows = [
        ("A", "on", "a1", "Good for me."),  # me
        ("A", "on", "a2", "Comfort for me."),  # me, comfort
        ("A", "on", "a3", "Best for the city."),  # city
        ("A", "on", "a4", "No reason given."),  # (none)
        ("A", "off", "a5", "For me and for the city."),  # me, city
        ("A", "off", "a6", "For the city."),  # city
        ("A", "off", "a7", "For the city."),  # city (same text as a6)
        ("A", "off", "a8", "   "),  # blank: left out
        ("B", "on", "b1", "Comfortable."),  # comfort
        ("B", "on", "b2", "For the city, comfortably."),  # city, comfort
    ]
    return pl.DataFrame(
        rows, schema=["model", "condition", "id", "reasoning"], orient="row"
    ).with_columns(pl.col("reasoning"))


async def test_frequencies_per_group_counted_by_hand(tiny):
    report = await code_reasonings(tiny_frame(), tiny, group_by=["model", "condition"])
    assert (report.rows, report.blank, report.sampled) == (10, 1, 9)
    (rules,) = report.coders
    assert rules.label == "codebook rules"
    groups = {(g.group["model"], g.group["condition"]): g for g in rules.groups}
    assert set(groups) == {("A", "on"), ("A", "off"), ("B", "on")}

    a_on = groups["A", "on"]
    # me 2/4, comfort 1/4, city 1/4; self 2/4 (a1, a2), city 1/4; one reasoning uncoded.
    assert (a_on.reasonings, a_on.coded, a_on.uncoded, a_on.invalid) == (4, 4, 1, 0)
    assert {c.code: (c.count, c.share) for c in a_on.codes} == {
        "me": (2, 0.5),
        "comfort": (1, 0.25),
        "city": (1, 0.25),
    }
    assert {c.category: c.count for c in a_on.categories} == {"self": 2, "city": 1}
    assert (a_on.core.category, a_on.core.share, a_on.core.runner_up) == ("self", 0.5, "city")

    a_off = groups["A", "off"]
    # me 1/3, city 3/3 → core city (1.0), runner-up self (1/3).
    assert {c.code: c.count for c in a_off.codes} == {"me": 1, "comfort": 0, "city": 3}
    assert a_off.core.category == "city" and a_off.core.share == 1.0
    assert a_off.core.runner_up_share == pytest.approx(1 / 3)
    # Examples are distinct texts: a6 and a7 say the same, so "city" has two quotes, not three.
    city_examples = next(c for c in a_off.codes if c.code == "city").examples
    assert sorted(e.text for e in city_examples) == ["For me and for the city.", "For the city."]

    b_on = groups["B", "on"]
    # comfort 2/2, city 1/2: categories self 2, city 1.
    assert {c.code: c.count for c in b_on.codes} == {"me": 0, "comfort": 2, "city": 1}
    assert b_on.core.category == "self"
    # Distinct texts coded: 8 of the 9 rows (a6 and a7 repeat a text).
    assert rules.texts == 8


async def test_examples_are_capped_truncated_and_stable(tiny):
    long = "For me " + "and so on " * 40
    frame = pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(6)],
            "reasoning": [f"For me, reason {i}." for i in range(5)] + [long],
        }
    )
    report = await code_reasonings(frame, tiny, examples=2, example_chars=60, seed=3)
    (group,) = report.coders[0].groups
    assert group.group == {}
    me = next(c for c in group.codes if c.code == "me")
    assert me.count == 6 and len(me.examples) == 2
    assert all(len(e.text) <= 60 for e in me.examples)
    again = await code_reasonings(frame.reverse(), tiny, examples=2, example_chars=60, seed=3)
    assert again.coders[0].groups[0].codes == group.codes
    report_all = await code_reasonings(frame, tiny, examples=6, example_chars=60, seed=3)
    quotes = [e.text for e in report_all.coders[0].groups[0].codes[0].examples]
    assert any(q.endswith("…") for q in quotes)


def test_sampling_is_seeded_per_group_and_independent_of_row_order():
    frame = pl.DataFrame(
        {
            "g": ["x"] * 50 + ["y"] * 5,
            "id": [f"x{i}" for i in range(50)] + [f"y{i}" for i in range(5)],
            "reasoning": ["text"] * 55,
        }
    )
    picked = sample_reasonings(frame, group_by=["g"], sample=10, seed=1)
    assert picked.group_by("g").len().sort("g").rows() == [("x", 10), ("y", 5)]
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=9)
    again = sample_reasonings(shuffled, group_by=["g"], sample=10, seed=1)
    assert sorted(again.get_column("_id")) == sorted(picked.get_column("_id"))
    other = sample_reasonings(frame, group_by=["g"], sample=10, seed=2)
    assert sorted(other.get_column("_id")) != sorted(picked.get_column("_id"))
    with pytest.raises(ValueError, match="ids repeat"):
        sample_reasonings(frame.with_columns(pl.lit("same").alias("id")))
    with pytest.raises(ValueError, match="lacks column"):
        sample_reasonings(frame, group_by=["model"])


# ---- agreement ---------------------------------------------------------------------------


class ScriptedCoder:
    """A stand-in judge with fixed answers per text, to wire agreement by hand."""

    label = "scripted"
    backend = "test"
    model = "scripted"

    def __init__(self, answers: dict[str, OpenCode]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def code(self, texts: Sequence[str]) -> list[OpenCode]:
        self.asked.extend(texts)
        return [self.answers[t] for t in texts]


async def test_kappa_between_the_rule_coder_and_a_judge(tiny):
    frame = pl.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5"],
            "reasoning": [
                "Good for me.",  # rules: me          judge: me
                "Comfort for me.",  # rules: me, comfort judge: me
                "Best for the city.",  # rules: city       judge: city, me
                "Nothing.",  # rules: -           judge: -
                "For the city.",  # rules: city        judge: invalid (left out)
            ],
        }
    )
    judge = ScriptedCoder(
        {
            "Good for me.": OpenCode(codes=("me",)),
            "Comfort for me.": OpenCode(codes=("me",)),
            "Best for the city.": OpenCode(codes=("me", "city")),
            "Nothing.": OpenCode(codes=()),
            "For the city.": OpenCode(codes=(), valid=False, raw="??", reason="no JSON object"),
        }
    )
    report = await code_reasonings(frame, tiny, judge=judge)
    agreement = report.agreement
    assert agreement is not None
    assert (agreement.first, agreement.second, agreement.items) == ("codebook rules", "scripted", 4)
    kappas = {c.name: c.kappa for c in agreement.codes}
    # "me" over the 4 items: rules (T, T, F, F), judge (T, T, T, F): po = 3/4,
    # pe = (2·3 + 2·1)/16 = 1/2 → kappa = (3/4 − 1/2)/(1/2) = 0.5
    assert kappas["me"].kappa == pytest.approx(0.5)
    # "comfort": rules (F, T, F, F), judge all F: po = 3/4, pe = (3·4)/16 = 3/4 → kappa 0.
    assert kappas["comfort"].kappa == pytest.approx(0.0)
    # "city": (F, F, T, F) both: kappa 1.
    assert kappas["city"].kappa == pytest.approx(1.0)
    assert agreement.mean_kappa == pytest.approx(0.5) and agreement.codes_in_mean == 3
    # Categories: self rules (T, T, F, F), judge (T, T, T, F) → 0.5 as for "me".
    assert {c.name: c.kappa.kappa for c in agreement.categories}["self"] == pytest.approx(0.5)
    judge_result = report.coders[1]
    assert judge_result.invalid == 1
    assert judge_result.invalid_examples[0].reason == "no JSON object"
    assert judge_result.groups[0].coded == 4 and judge_result.groups[0].invalid == 1
    # The report serialises as it is.
    assert msgspec.json.decode(msgspec.json.encode(report), type=CodingReport) == report


async def test_the_judge_codes_the_same_sample_as_the_rules(tiny):
    frame = pl.DataFrame(
        {
            "g": ["a"] * 30 + ["b"] * 30,
            "id": [str(i) for i in range(60)],
            "reasoning": [f"For me {i}" for i in range(60)],
        }
    )
    judge = ScriptedCoder({f"For me {i}": OpenCode(codes=("me",)) for i in range(60)})
    report = await code_reasonings(frame, tiny, group_by=["g"], judge=judge, sample=7, seed=5)
    assert len(judge.asked) == 14
    assert [g.reasonings for g in report.coders[0].groups] == [7, 7]
    assert report.agreement.items == 14
    # Every item "me" for both: kappa undefined (one label), not a made-up 1.
    me = report.agreement.codes[0]
    assert me.kappa.kappa is None and me.first_count == 14


def test_code_agreement_matches_cohen_kappa(tiny):
    rng = np.random.default_rng(0)
    first = [
        OpenCode(codes=tuple(c for c in ("me", "city") if rng.random() < 0.5)) for _ in range(40)
    ]
    second = [
        OpenCode(codes=tuple(c for c in ("me", "city") if rng.random() < 0.5)) for _ in range(40)
    ]
    agreement = code_agreement(first, second, tiny)
    expected = cohen_kappa(["me" in a.codes for a in first], ["me" in b.codes for b in second])
    assert agreement.codes[0].kappa == expected


# ---- the LLM judge -----------------------------------------------------------------------


def test_parse_judgement(city):
    assert parse_judgement('{"codes": ["own_utility"], "memo": "self"}', city) == (
        ("own_utility",),
        "self",
    )
    # Case, spaces and hyphens are read; the order is the codebook's; a fenced answer is found.
    assert parse_judgement('```json\n{"codes": ["Board norm", "own-utility"]}\n```', city) == (
        ("own_utility", "board_norm"),
        "",
    )
    assert parse_judgement('{"codes": []}', city) == ((), "")
    for text, reason in [
        ("I think own utility.", "no JSON object"),
        ('{"memo": "x"}', 'no "codes"'),
        ('{"codes": "own_utility"}', "must be a list"),
        ('{"codes": ["greed", "own_utility"]}', "unknown code(s) 'greed'"),
    ]:
        result = parse_judgement(text, city)
        assert isinstance(result, Invalid) and reason in result.reason and result.raw == text


def test_the_judge_prompt_lists_the_codebook(city):
    judge = JudgeCoder(_NoClient(), city)
    request = judge.request(0, "Some reasoning.")
    system, user = request.messages
    assert request.temperature == 0.0
    for code in city.codes:
        assert f"- {code.name} [" in system.content
    assert '{"codes": ["code_name", ...]' in system.content
    assert "Some reasoning." in user.content
    prompts = load_judge_prompts()
    assert "{reasoning}" in prompts.item and "{reason}" in prompts.reask


class _NoClient:
    backend = "none"
    model = "none"

    async def complete(self, request):  # pragma: no cover - never called
        raise AssertionError

    async def aclose(self) -> None:
        return None


_REASONING = re.compile(r"<<<\n(.*)\n>>>", re.S)


class JudgeResponder:
    """Answers the judge's prompt on the mock server like a model would, with scripted faults:
    texts with MALFORMED get prose first, UNKNOWN an unknown code first, GARBAGE never JSON."""

    def __init__(self, codebook: Codebook) -> None:
        self.coder = CodebookCoder(codebook)

    def answer(self, messages: Sequence[Message], rng: np.random.Generator) -> str | None:
        match = _REASONING.search(messages[1].content) if len(messages) > 1 else None
        if match is None:
            return None
        text = match.group(1)
        reasked = any(m.role == "assistant" for m in messages)
        if "GARBAGE" in text:
            return "I would rather not say."
        if "MALFORMED" in text and not reasked:
            return "Let me think. The codes are own utility and sacrifice"
        if "UNKNOWN" in text and not reasked:
            return '{"codes": ["greed"], "memo": "x"}'
        codes = list(self.coder.code_text(text))
        if "DISAGREE" in text:
            codes.append("fairness")
        return msgspec.json.encode({"codes": codes, "memo": "coded"}).decode()


@contextlib.asynccontextmanager
async def judge_server(codebook: Codebook) -> AsyncIterator[tuple[str, MockServer]]:
    server = MockServer(MockSettings(), [JudgeResponder(codebook)])
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", server
    finally:
        await runner.cleanup()


JUDGE_TEXTS = [
    "No other district would make me more satisfied, so I stay.",
    "The common good comes first, even though my own satisfaction drops.",
    "MALFORMED at first: I come first.",
    "UNKNOWN at first: for the city.",
    "GARBAGE every time.",
    "DISAGREE: I come first.",
]


def _settings(url: str, cache: Path, **extra: object) -> InferenceSection:
    return InferenceSection(
        backend="openai-http",
        model="mock",
        endpoints=[url],
        cache_dir=str(cache),
        concurrency=3,
        max_reasks=1,
        backoff_base_s=0.01,
        **extra,  # type: ignore[arg-type]
    )


async def test_judge_against_the_mock_server_reasks_and_caches(city, tmp_path):
    async with judge_server(city) as (url, server):
        judge = JudgeCoder.from_settings(_settings(url, tmp_path / "cache"), city, environ={})
        assert judge.label == "LLM judge openai-http/mock"
        try:
            first = await judge.code(JUDGE_TEXTS)
        finally:
            await judge.aclose()
        # 6 texts; MALFORMED, UNKNOWN and GARBAGE are asked twice (max_reasks = 1).
        assert server.stats.requests == 9
        plain, sacrifice, malformed, unknown, garbage, disagree = first
        assert plain.codes == ("own_utility", "avoid_loss") and plain.memo == "coded"
        assert (plain.attempts, plain.requests, plain.cached) == (1, 1, False)
        assert sacrifice.codes == ("system_utility", "sacrifice")
        assert malformed.valid and malformed.codes == ("own_utility",) and malformed.attempts == 2
        assert malformed.invalid_attempts[0].reason == "no JSON object in the answer"
        assert unknown.valid and unknown.codes == ("system_utility",)
        assert "unknown code(s) 'greed'" in unknown.invalid_attempts[0].reason
        # Never turned into "no code": recorded as invalid with its raw answer and why.
        assert not garbage.valid and garbage.codes == () and garbage.error is None
        assert garbage.raw == "I would rather not say." and garbage.reason == (
            "no JSON object in the answer"
        )
        assert garbage.attempts == 2 and len(garbage.invalid_attempts) == 1
        assert disagree.codes == ("own_utility", "fairness")

        # A second pass is answered by the cache: not one request.
        again = JudgeCoder.from_settings(_settings(url, tmp_path / "cache"), city, environ={})
        try:
            second = await again.code(JUDGE_TEXTS)
        finally:
            await again.aclose()
        assert server.stats.requests == 9
        assert [c.codes for c in second] == [c.codes for c in first]
        assert all(c.cached and c.requests == 0 for c in second)


async def test_judge_through_the_pipeline_against_the_mock_server(city, tmp_path):
    frame = pl.DataFrame(
        {
            "model": ["m"] * 6,
            "id": [f"d{i}" for i in range(6)],
            "reasoning": JUDGE_TEXTS,
        }
    )
    async with judge_server(city) as (url, server):
        judge = JudgeCoder.from_settings(_settings(url, tmp_path / "cache"), city, environ={})
        try:
            report = await code_reasonings(frame, city, group_by=["model"], judge=judge)
        finally:
            await judge.aclose()
        assert server.stats.requests == 9
    rules, llm = report.coders
    assert (rules.label, llm.label) == ("codebook rules", "LLM judge openai-http/mock")
    assert (llm.texts, llm.requests, llm.invalid, llm.errors) == (6, 9, 1, 0)
    assert llm.invalid_examples[0].id == "d4"
    assert report.agreement.items == 5
    fairness = next(c for c in report.agreement.codes if c.name == "fairness")
    assert (fairness.first_count, fairness.second_count) == (0, 1)
    assert report.agreement.note is None


async def test_a_server_that_never_answers_is_recorded_as_an_error(city, tmp_path):
    settings = InferenceSection(
        backend="openai-http",
        model="mock",
        endpoints=["http://127.0.0.1:9/v1"],  # the discard port: connection refused
        cache=False,
        max_attempts=1,
        timeout_s=2.0,
    )
    judge = JudgeCoder.from_settings(settings, city, environ={})
    try:
        (result,) = await judge.code(["I come first."])
    finally:
        await judge.aclose()
    assert not result.valid and result.error and result.reason == result.error


async def test_offline_judge_is_labelled_and_exercises_reasks(city):
    texts = [text for text, _ in CITY_TEXTS]
    judge = JudgeCoder.from_settings(InferenceSection(), city)
    assert judge.label == OFFLINE_JUDGE_LABEL and judge.backend == "offline"
    try:
        coded = await judge.code(texts)
    finally:
        await judge.aclose()
    rules = CodebookCoder(city)
    assert [c.codes for c in coded] == [rules.code_text(t) for t in texts]
    assert all("not a model" in c.memo for c in coded)

    faulty = JudgeCoder.from_settings(
        InferenceSection(max_reasks=3, offline=OfflineSection(invalid_rate=0.5)), city, seed=1
    )
    coded = await faulty.code(texts)
    assert any(c.invalid_attempts for c in coded)
    for result, text in zip(coded, texts, strict=True):
        if result.valid:
            assert result.codes == rules.code_text(text)
        else:
            assert result.raw and result.reason

    frame = pl.DataFrame({"id": [str(i) for i in range(len(texts))], "reasoning": texts})
    report = await code_reasonings(
        frame, city, judge=JudgeCoder.from_settings(InferenceSection(), city)
    )
    assert report.agreement.mean_kappa == pytest.approx(1.0)
    assert "offline stand-in" in report.agreement.note

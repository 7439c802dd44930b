"""Whatever text a server sends, the run goes on and the decision is logged with a reason.

Each garbage answer goes through the real LLM agent with the Schelling city's prompts, then end
to end through a run whose client answers it: the decision is logged, invalid with a reason
(or valid when the answer genuinely is), the log reads back, and the run completes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agora.agents.llm_agent import LLMAgent
from agora.engine.answer_json import LONE_SURROGATE, MAX_ANSWER_CHARS, MAX_DEPTH
from agora.engine.log import read_log
from agora.engine.records import Completion, Decision, Parsed, Request, RunEnd, Turn
from agora.engine.replay import Replayer, read_run
from agora.engine.runner import RunPlan, execute, plan_run
from agora.engine.seeding import Seeds
from tests.helpers import CONFIG

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = '{"reasoning": "I am content here.", "action": "stay"}'
DEEP = f"nests deeper than {MAX_DEPTH} levels"
TOO_LONG = f"over the {MAX_ANSWER_CHARS}-character limit"
MALFORMED = "the answer's JSON object is malformed"
NO_OBJECT = "no JSON object in the answer"
ANY = "either"  # valid, or invalid with some reason: the world's reading decides


def _answer(**fields: str) -> str:
    """A JSON answer with a reasoning, each value given as JSON text."""
    body = {"reasoning": '"fine"', **fields}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}"


def _nested(depth: int, inner: str = "1") -> str:
    return '{"a":' * depth + inner + "}" * depth


# (id, answer text, expected): expected is "valid", ANY, or a part of the invalid reason.
GARBAGE: list[tuple[str, str, str]] = [
    ("empty", "", "empty answer"),
    ("whitespace", " \n\t  \r\n", "empty answer"),
    ("prose", "I will stay where I am, thank you.", NO_OBJECT),
    ("empty-object", "{}", 'no "reasoning" given'),
    ("empty-list", "[]", NO_OBJECT),
    ("null", "null", NO_OBJECT),
    ("integer", "42", NO_OBJECT),
    ("float", "-1.5e10", NO_OBJECT),
    ("string", '"stay"', NO_OBJECT),
    ("boolean", "true", NO_OBJECT),
    ("truncated-in-string", '{"reasoning": "fine", "action": "st', NO_OBJECT),
    ("truncated-before-brace", '{"reasoning": "fine", "action": "stay"', NO_OBJECT),
    ("unquoted-value", '{"reasoning": "fine", "action": stay}', MALFORMED),
    ("deep-list-20k", "[" * 20_000 + "]" * 20_000, DEEP),
    ("deep-list-unclosed", "[" * 30_000, DEEP),
    ("deep-object-10k", _nested(10_000), DEEP),
    ("deep-object-20k", _nested(20_000), TOO_LONG),
    ("deep-action", _answer(action="[" * 20_000 + "]" * 20_000), DEEP),
    ("deep-district", _answer(action='"move"', district=_nested(100)), DEEP),
    ("deep-python-tuples", "{'reasoning': 'x', 'action': " + "(" * 100 + ")" * 100 + "}", DEEP),
    ("nested-district", _answer(action='"move"', district=_nested(30)), ANY),
    ("brackets-in-a-string", _answer(action='"stay"', post='"' + "[" * 10_000 + '"'), "valid"),
    ("escaped-surrogate", r'{"action":"stay","reasoning":"a\ud800b"}', LONE_SURROGATE),
    ("escaped-low-surrogate-post", _answer(action='"stay"', post=r'"hi \udc00"'), LONE_SURROGATE),
    ("python-escaped-surrogate", "{'action': 'stay', 'reasoning': '\\U0000d800'}", LONE_SURROGATE),
    ("raw-surrogate", '{"action":"stay","reasoning":"a\ud800b"}', LONE_SURROGATE),
    ("raw-surrogate-in-prose", "Sure \udfff " + GOOD, LONE_SURROGATE),
    ("surrogate-pair-escape", r'{"action":"stay","reasoning":"smile \ud83d\ude00"}', "valid"),
    ("raw-nul", '{"action":"stay","reasoning":"a\x00b"}', MALFORMED),
    ("escaped-nul", '{"action":"stay","reasoning":"a\\u0000b"}', "valid"),
    ("repeated-objects-1mb", "{a}" * 350_000, TOO_LONG),
    ("repeated-objects-60k", "{a}" * 20_000, MALFORMED),
    ("huge-string-1mb", _answer(action='"stay"', post='"' + "x" * 1_000_000 + '"'), TOO_LONG),
    ("long-post-60k", _answer(action='"stay"', post='"' + "y" * 60_000 + '"'), "valid"),
    ("number-1e999", _answer(action='"move"', district="1e999"), 'a "move" needs a "district"'),
    ("number-5000-digits", _answer(action='"move"', district="1" + "0" * 5000), MALFORMED),
    (
        "district-5000-digit-string",
        _answer(action='"move"', district='"' + "9" * 5000 + '"'),
        "digits",
    ),
    ("district-object", _answer(action='"move"', district='{"n": 4}'), ANY),
    ("district-list", _answer(action='"move"', district="[3, 4]"), ANY),
    ("district-boolean", _answer(action='"move"', district="true"), "not a district number"),
    ("district-null", _answer(action='"move"', district="null"), 'a "move" needs a "district"'),
    ("district-negative", _answer(action='"move"', district="-3"), "does not exist"),
    ("district-fraction", _answer(action='"move"', district="2.5"), "not a district number"),
    ("action-number", _answer(action="7"), 'neither "stay" nor "move"'),
    ("action-list", _answer(action='["stay"]'), 'neither "stay" nor "move"'),
    ("action-object", _answer(action='{"stay": true}'), 'neither "stay" nor "move"'),
    ("action-null", _answer(action="null"), 'the answer has no "action"'),
    ("action-huge", _answer(action='"' + "z" * 60_000 + '"'), 'neither "stay" nor "move"'),
    ("reasoning-number", '{"reasoning": 5, "action": "stay"}', "valid"),
    ("reasoning-list", '{"reasoning": ["a", ["b"]], "action": "stay"}', "valid"),
    ("reasoning-empty", '{"reasoning": "  ", "action": "stay"}', 'no "reasoning" given'),
    ("post-object", _answer(action='"stay"', post='{"text": "hi"}'), "valid"),
    ("likes-objects", _answer(action='"stay"', likes='[{"id": 1}]'), "valid"),
    ("python-dict", "{'action': 'stay', 'reasoning': \"don't move\"}", "valid"),
    ("python-set", "{'action': 'stay', 'reasoning': 'x', 'likes': {1, 2}}", "valid"),
    ("python-int-keys", "{1: 'a', 'action': 'stay', 'reasoning': 'x'}", "valid"),
    ("python-complex", "{'action': 'stay', 'reasoning': 'x', 'post': 1j}", MALFORMED),
    ("python-ellipsis", "{'action': 'stay', 'reasoning': ...}", MALFORMED),
    ("python-unhashable", "{[]}", MALFORMED),
    ("nan", '{"action": "stay", "reasoning": "x", "n": NaN}', MALFORMED),
    ("code-fence", "Here:\n```json\n" + GOOD + "\n```\n", "valid"),
    ("fence-then-spaces", "```" + " " * 60_000, NO_OBJECT),
    ("think-block", '<think>maybe {"action": "move"}</think>' + GOOD, "valid"),
    ("unclosed-thinks", "<think>" * 9_000, NO_OBJECT),
    ("long-think-then-answer", "<think>" + "x" * 200_000 + "</think>" + GOOD, "valid"),
    ("byte-order-mark", "\ufeff" + GOOD, "valid"),
    ("ansi-colours", "\x1b[31m" + GOOD + "\x1b[0m", "valid"),
    ("trailing-commas", '{"reasoning": "ok", "action": "stay", "likes": [1,],}', "valid"),
    ("duplicate-keys", '{"action": "move", "action": "stay", "reasoning": "x"}', "valid"),
    ("last-object-wrong", GOOD + ' {"action": "fly", "reasoning": "b"}', "neither"),
    ("closing-braces-after", GOOD + "}" * 60_000, "valid"),
    ("replacement-chars", '{"action": "stay", "reasoning": "\ufffd\ufffd"}', "valid"),
]


def _plan(tmp_path: Path, agents: int, **overrides: Any) -> RunPlan:
    settings: dict[str, Any] = {
        "run.out": str(tmp_path / "run"),
        "run.ticks": 1,
        "world.agents": agents,
        "world.districts": 9,
        "world.cells_per_district": agents // 9 + 2,
        "inference.max_reasks": 1,
    }
    settings.update(overrides)
    return plan_run(CONFIG, settings, now=NOW)


@pytest.fixture(scope="module")
def city_agent(tmp_path_factory: pytest.TempPathFactory) -> tuple[LLMAgent, Turn]:
    """The real LLM agent of a Schelling city with its board, and its first turn."""
    plan = _plan(tmp_path_factory.mktemp("parse"), agents=18)
    seeds = Seeds(plan.config.run.seed)
    parts = plan.world_plugin.build(plan.world_config, seeds)
    policies = [p.plugin.build(p.config, seeds, p.name, parts.world) for p in plan.policies]
    agents = plan.agent_plugin.build(
        plan.agent_config, parts.world.agent_ids(), parts.prompts, policies, plan.config.inference
    )
    agent_id = parts.world.agent_ids()[0]
    views = {policy.name: policy.view(agent_id, 0) for policy in policies}
    turn = Turn(
        tick=0, agent_id=agent_id, observation=parts.world.observe(agent_id, 0), views=views
    )
    agent = agents[agent_id]
    assert isinstance(agent, LLMAgent)
    return agent, turn


def _check(result: Parsed | Any, expected: str, name: str) -> None:
    if expected == "valid":
        assert isinstance(result, Parsed), f"{name}: {getattr(result, 'reason', result)}"
        return
    if expected == ANY and isinstance(result, Parsed):
        return
    assert not isinstance(result, Parsed), f"{name} was read as valid: {result}"
    assert result.reason.strip(), name
    assert expected in result.reason or expected == ANY, f"{name}: {result.reason}"


def test_the_table_has_the_kinds_of_garbage_it_claims() -> None:
    names = [name for name, _, _ in GARBAGE]
    assert len(names) == len(set(names)) and len(names) >= 51


@pytest.mark.parametrize(
    ("text", "expected"), [g[1:] for g in GARBAGE], ids=[g[0] for g in GARBAGE]
)
def test_the_agent_reads_any_text_as_a_result_with_a_reason(
    city_agent: tuple[LLMAgent, Turn], text: str, expected: str
) -> None:
    agent, turn = city_agent
    result = agent.parse(text, turn)
    _check(result, expected, text[:40])
    if not isinstance(result, Parsed):
        assert len(result.reason) <= 501  # a reason quotes at most a little of the answer


class _Prompts:
    """The city's prompts, but decoding raises what a careless world might."""

    def __init__(self, inner: Any, error: Exception) -> None:
        self.inner = inner
        self.error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decode_action(self, answer: Any, observation: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [TypeError("unhashable type: 'dict'"), RecursionError("too deep"), MemoryError(), KeyError(1)],
    ids=lambda e: type(e).__name__,
)
def test_any_exception_of_the_worlds_decoder_is_an_invalid_answer(
    city_agent: tuple[LLMAgent, Turn], error: Exception
) -> None:
    agent, turn = city_agent
    odd = LLMAgent(
        agent.agent_id,
        agent.config,
        _Prompts(agent.prompts, error),
        agent.policies,
        agent.system,
        agent.sampling,
    )
    result = odd.parse(_answer(action='"move"', district='{"n": 4}'), turn)
    assert not isinstance(result, Parsed)
    assert result.reason.startswith(f"the answer could not be read ({type(error).__name__}")


# ---- end to end --------------------------------------------------------------------------


class GarbageClient:
    """Answers each agent with its own text, on every attempt; the rest answer well."""

    backend = "garbage"
    model = "garbage"

    def __init__(self, answers: dict[int, str]) -> None:
        self.answers = answers
        self.calls: list[Request] = []

    async def prepare(self, known: Any) -> dict[str, Any]:
        return {}

    def reports(self) -> list[Any]:
        return []

    async def complete(self, request: Request) -> Completion:
        self.calls.append(request)
        text = self.answers.get(request.agent_id, GOOD)
        return Completion(text, 10, 5, 0.0, self.model)

    async def aclose(self) -> None:
        return None


def _run(plan: RunPlan, answers: dict[int, str]) -> tuple[Any, list[Decision], GarbageClient]:
    client = GarbageClient(answers)
    summary = asyncio.run(execute(plan, client=client))
    records = list(read_log(plan.out_dir / "log.jsonl"))
    assert isinstance(records[-1], RunEnd) and records[-1].status == "completed"
    decisions = [r for r in records if isinstance(r, Decision)]
    return summary, decisions, client


def test_every_garbage_answer_is_logged_and_the_run_completes(tmp_path: Path) -> None:
    plan = _plan(tmp_path, agents=len(GARBAGE) + 3)
    answers = {agent: text for agent, (_, text, _) in enumerate(GARBAGE)}
    summary, decisions, client = _run(plan, answers)
    by_agent = {d.agent: d for d in decisions}
    assert len(by_agent) == len(decisions) == len(GARBAGE) + 3
    for agent, (name, _, expected) in enumerate(GARBAGE):
        decision = by_agent[agent]
        assert decision.error is None, f"{name}: {decision.error}"
        if decision.valid:
            assert expected in ("valid", ANY), name
            assert decision.attempts == 1 and decision.requests == 1
            continue
        assert expected not in ("valid",), f"{name}: {decision.invalid_reason}"
        assert decision.invalid_reason and (expected in decision.invalid_reason or expected == ANY)
        assert decision.action is None and decision.attempts == 2 and decision.requests == 2
        assert len(decision.invalid_attempts) == 1
    assert summary.errors == 0 and summary.decisions == len(GARBAGE) + 3
    # Every re-ask can be sent: no lone surrogate, and the echo of the answer is cut.
    for request in client.calls:
        for message in request.messages:
            message.content.encode()
            assert len(message.content) < 20_000 or message.role != "assistant"
    # What was logged replays: the tick's digest is rebuilt from the log alone.
    replayer = Replayer(read_run(plan.out_dir))
    assert replayer.step().tick == 0


def test_a_raw_surrogate_is_logged_replaced_and_re_asked_with_the_reason(tmp_path: Path) -> None:
    plan = _plan(tmp_path, agents=9)
    _, decisions, client = _run(plan, {2: "Sure \ud800 " + GOOD})
    decision = next(d for d in decisions if d.agent == 2)
    assert not decision.valid and decision.invalid_reason == LONE_SURROGATE
    assert decision.raw == "Sure \ufffd " + GOOD
    assert decision.invalid_attempts[0].raw == decision.raw
    reask = next(r for r in client.calls if r.agent_id == 2 and r.attempt == 1)
    assert reask.messages[-2].content == decision.raw
    assert LONE_SURROGATE in reask.messages[-1].content


def test_a_megabyte_answer_is_logged_as_its_head_with_length_and_hash(tmp_path: Path) -> None:
    plan = _plan(tmp_path, agents=9)
    text = "{a}" * 350_000
    _, decisions, _ = _run(plan, {4: text})
    decision = next(d for d in decisions if d.agent == 4)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert decision.invalid_reason is not None and TOO_LONG in decision.invalid_reason
    assert decision.raw == text[:4096]
    assert (decision.raw_chars, decision.raw_sha256) == (len(text), digest)
    attempt = decision.invalid_attempts[0]
    assert (attempt.raw, attempt.raw_chars, attempt.raw_sha256) == (text[:4096], len(text), digest)
    line = next(
        line
        for line in (plan.out_dir / "log.jsonl").read_bytes().splitlines()
        if line.startswith(b'{"kind":"decision","tick":0,"agent":4,')
    )
    assert len(line) < 20_000
    # A short answer is whole, and says so by carrying no length or hash.
    others = [d for d in decisions if d.agent != 4]
    assert all(d.raw_chars is None and d.raw_sha256 is None for d in others)


def _patch_agent(
    monkeypatch: pytest.MonkeyPatch, agent_id: int, parse: Callable[[str, Turn], Any]
) -> None:
    original = LLMAgent.parse

    def patched(self: LLMAgent, text: str, turn: Turn) -> Any:
        return parse(text, turn) if self.agent_id == agent_id else original(self, text, turn)

    monkeypatch.setattr(LLMAgent, "parse", patched)


def test_an_agent_whose_parse_raises_gets_an_invalid_answer_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def parse(text: str, turn: Turn) -> Any:
        raise RuntimeError("the parser tripped")

    _patch_agent(monkeypatch, 1, parse)
    summary, decisions, _ = _run(_plan(tmp_path, agents=9), {})
    decision = next(d for d in decisions if d.agent == 1)
    assert decision.error is None and not decision.valid
    assert (
        decision.invalid_reason == "the answer could not be read (RuntimeError: the parser tripped)"
    )
    assert decision.raw == GOOD and decision.requests == 2
    assert summary.invalid == 1 and summary.errors == 0


def test_an_answer_the_log_cannot_hold_is_invalid_before_any_policy_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agora.worlds.schelling_city.world import Relocation

    def parse(text: str, turn: Turn) -> Any:
        # An agent of another kind, which does not check what it reads.
        return Parsed(Relocation(move_to=None), "ok \ud800", {"post": "hello \udc00"})

    _patch_agent(monkeypatch, 3, parse)
    _, decisions, _ = _run(_plan(tmp_path, agents=9), {})
    decision = next(d for d in decisions if d.agent == 3)
    assert not decision.valid and decision.error is None
    assert decision.invalid_reason is not None
    assert decision.invalid_reason.startswith("the answer cannot be logged (UnicodeEncodeError")


def test_a_record_the_log_cannot_encode_becomes_an_error_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agora.worlds.schelling_city.world import SchellingCity

    annotate = SchellingCity.annotate

    def odd_annotate(self: SchellingCity, agent_id: int, observation: Any, action: Any) -> Any:
        info = annotate(self, agent_id, observation, action)
        return {**info, "odd": 1j} if agent_id == 5 else info

    monkeypatch.setattr(SchellingCity, "annotate", odd_annotate)
    # Enough agents that one error stays under the rate at which a run is called failed.
    summary, decisions, _ = _run(_plan(tmp_path, agents=45), {})
    decision = next(d for d in decisions if d.agent == 5)
    assert decision.error is not None
    assert decision.error.startswith("internal error: a 'decision' record cannot be logged")
    assert decision.action is None and decision.info == {} and decision.raw == GOOD
    assert summary.errors == 1 and summary.decisions == 45

"""Multi-ask turns: several calls in one conversation, each with its own schema and budget.

Driven through the real runner with ``tests.three_ask_world`` (rate → choose → rate the
outcome), on the offline backend and with scripted answers, on both schedulers; a stopped run
resumes to the same log only if the offline behaviour's own state was rebuilt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import agora
from agora.engine.config import ConfigError
from agora.engine.inference.offline import OfflineClient
from agora.engine.protocols import AnswerField, Ask
from agora.engine.records import Request
from agora.engine.seeding import Seeds
from agora.testing import WorldConformance
from tests import three_ask_world
from tests.helpers import of_kind, records, run_cli, without_timing
from tests.test_scheduler import ScriptedClient
from tests.three_ask_world import PLUGIN

WORLD = "tests.three_ask_world:PLUGIN"


def config(**world: Any) -> dict[str, Any]:
    return {
        "run": {"ticks": 5, "seed": 7},
        "world": {"kind": WORLD, "agents": 4, **world},
        "policies": {},
    }


def offline_client(**world: Any) -> OfflineClient:
    from agora.engine.config import OfflineSection

    parts = PLUGIN.build(PLUGIN.config_type(**world), Seeds(7))
    return OfflineClient(parts.offline, [], OfflineSection())


def decisions(run_dir: Path) -> list[dict[str, Any]]:
    return of_kind(records(run_dir / "log.jsonl"), "decision")


@pytest.mark.parametrize("independent", [True, False])
def test_every_call_of_a_turn_is_kept_in_its_decision(tmp_path, independent):
    run = agora.run(config(independent=independent), out=tmp_path / "run")
    log = records(run.path / "log.jsonl")
    assert log[0]["scheduler"] == ("free-running" if independent else "lockstep")
    made = of_kind(log, "decision")
    assert len(made) == 20 and all(d["valid"] for d in made)
    for d in made:
        calls = d["calls"]
        refused = d["action"]["choice"] == "PUNISH"
        asked = ["appraise", "choose", "feedback", *(["note"] if refused else [])]
        assert [c["ask"] for c in calls] == asked
        assert d["action"] == {
            "before": calls[0]["answer"],
            "choice": calls[1]["answer"],
            "after": calls[2]["answer"],
            "note": calls[3]["answer"] if refused else "",
        }
        assert d["attempts"] == len(asked) and d["requests"] == len(asked)
        assert d["tokens_in"] == sum(c["tokens_in"] for c in calls)
        assert d["raw"] == calls[-1]["raw"]
        assert d["reasoning"] == calls[1]["reasoning"] != ""
    # The offline belief learns from the offers: offer 1 after 2, 5, 8 is refused, with a
    # note asked in prose: the answer is the text itself, not JSON.
    fourth = [d for d in made if d["tick"] == 3]
    assert {d["action"]["choice"] for d in fourth} == {"PUNISH"}
    assert {d["calls"][3]["raw"] for d in fourth} == {"An offer of 1 is unfair."}
    assert {d["action"]["note"] for d in fourth} == {"An offer of 1 is unfair."}
    ticks = of_kind(log, "tick")
    assert ticks[3]["metrics"] == {"accepted": 0, "refused": 4, "missed": 0}


def test_later_asks_see_the_earlier_answers_in_one_conversation(tmp_path):
    client = ScriptedClient(offline_client())
    agora.run(config(), out=tmp_path / "run", ticks=1, client=client)
    mine = [r for r in client.calls if r.agent_id == 0]
    assert [r.ask.name for r in mine if r.ask] == ["appraise", "choose", "feedback", "note"]
    first, second, third, note = mine
    # The prose ask: no JSON mode, no schema, no answer format appended.
    assert note.json_answer is False and note.answer_schema is None
    assert note.messages[-1].content == "Write one sentence to the proposer, as plain text."
    assert all(r.json_answer for r in (first, second, third))
    assert [m.role for m in third.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    # One context, at the start; each later ask is its own message after the answer used.
    assert "You are offered 2 of 10" in first.messages[1].content
    assert "Round 1." in first.messages[1].content
    assert second.messages[:2] == first.messages
    assert json.loads(second.messages[2].content)["valence"] == second.ask.answers["appraise"]
    choice = third.ask.answers["choose"]
    assert f"You chose {choice}" in third.messages[-1].content
    # Each ask has its own schema: the rating's, the choice's.
    assert first.answer_schema["required"] == ["valence"]
    assert second.answer_schema["required"] == ["reasoning", "choice"]
    # One schema object per ask for every agent: batches group requests by it.
    other = next(r for r in client.calls if r.agent_id == 1 and r.ask and r.ask.name == "appraise")
    assert other.answer_schema is first.answer_schema


def test_each_ask_is_re_asked_within_its_own_budget(tmp_path):
    def script(request: Request) -> object:
        # Agent 1's choice is bad twice, then good: the choose ask has the run's 2 re-asks.
        if request.agent_id == 1 and request.ask and request.ask.name == "choose":
            return '{"reasoning": "hm", "choice": "MAYBE"}' if request.attempt < 2 else None
        # Agent 2's feedback is never a number: that ask has no re-ask at all.
        if request.agent_id == 2 and request.ask and request.ask.name == "feedback":
            return '{"valence": "sad"}'
        return None

    client = ScriptedClient(offline_client(), script)
    run = agora.run(config(), out=tmp_path / "run", ticks=1, client=client)
    made = {d["agent"]: d for d in decisions(run.path)}
    one = made[1]
    assert one["valid"] is True
    assert [c["attempts"] for c in one["calls"]] == [1, 3, 1, 1]  # a refusal: a note too
    assert one["attempts"] == 6 and one["requests"] == 6
    reasons = [a["reason"] for a in one["invalid_attempts"]]
    assert reasons == ["choice 'MAYBE' is neither ACCEPT nor PUNISH"] * 2
    assert one["calls"][1]["invalid_attempts"] == one["invalid_attempts"]
    two = made[2]
    assert two["valid"] is False and two["action"] is None and two["error"] is None
    assert [c["valid"] for c in two["calls"]] == [True, True, False]
    assert (
        two["invalid_reason"] == "ask 'feedback': valence 'sad' is not an integer from -100 to 100"
    )
    assert two["raw"] == '{"valence": "sad"}' and two["attempts"] == 3
    # The world was told agent 2 missed its round: its history has no choice for it.
    tick = of_kind(records(run.path / "log.jsonl"), "tick")[0]
    assert tick["metrics"]["missed"] == 1 and tick["valid"] == 3 and tick["invalid"] == 1
    assert run.summary.invalid == 1


def test_an_ask_that_fails_ends_the_turn_as_an_error(tmp_path):
    from agora.engine.inference.errors import InferenceError

    def script(request: Request) -> object:
        if request.agent_id == 3 and request.ask and request.ask.name == "choose":
            return InferenceError("the server is gone", retryable=True, requests=2)
        return None

    client = ScriptedClient(offline_client(), script)
    run = agora.run(config(), out=tmp_path / "run", ticks=1, client=client)
    three = next(d for d in decisions(run.path) if d["agent"] == 3)
    assert three["valid"] is False and three["error"] == "the server is gone"
    assert [c["ask"] for c in three["calls"]] == ["appraise", "choose"]
    assert three["requests"] == 3 and three["calls"][1]["requests"] == 2


@pytest.mark.parametrize("independent", [True, False])
def test_invalid_answers_at_every_ask_never_shift_a_round(tmp_path, independent):
    settings = {"inference.offline.invalid_rate": 0.3, "inference.max_reasks": 0}
    run = agora.run(config(independent=independent), out=tmp_path / "run", overrides=settings)
    log = records(run.path / "log.jsonl")
    made = of_kind(log, "decision")
    keys = sorted((d["tick"], d["agent"]) for d in made)
    assert keys == [(t, a) for t in range(5) for a in range(4)]
    missed_where = {d["invalid_reason"].split(":")[0] for d in made if not d["valid"]}
    assert len(missed_where) >= 2, missed_where  # invalid answers at more than one ask
    for tick in of_kind(log, "tick"):
        mine = [d for d in made if d["tick"] == tick["tick"]]
        assert tick["metrics"]["missed"] == sum(not d["valid"] for d in mine)
    for d in made:
        if d["valid"]:
            assert d["info"]["offer"] == [2, 5, 8, 1, 6][d["tick"]]
    assert agora.replay(run.path).tick == 4  # every digest re-derived


def test_a_stopped_run_resumes_with_the_offline_belief_rebuilt(tmp_path):
    whole = agora.run(config(), out=tmp_path / "whole", ticks=8)
    log = (whole.path / "log.jsonl").read_text().splitlines(keepends=True)
    # Keep the log as a kill right after tick 2's record would have left it.
    cut = [i for i, line in enumerate(log) if '"kind":"tick"' in line][2]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "log.jsonl").write_text("".join(log[: cut + 1]))
    result = run_cli("resume", str(broken), "-q")
    assert result.returncode == 0, result.stderr

    def tail(path: Path) -> list[Any]:
        kept = [r for r in records(path / "log.jsonl") if r["kind"] in ("decision", "tick")]
        return [without_timing(r) for r in kept if r["tick"] >= 3]

    assert tail(broken) == tail(whole.path)


def test_a_prose_answer_is_read_without_its_thinking_and_re_asked_in_prose(tmp_path):
    def script(request: Request) -> object:
        if request.agent_id == 0 and request.ask and request.ask.name == "note":
            return (
                "<think>be nice</think>   " if request.attempt == 0 else "<think>x</think> Unfair! "
            )
        return None

    client = ScriptedClient(offline_client(), script)
    run = agora.run(config(), out=tmp_path / "run", ticks=1, client=client)
    zero = next(d for d in decisions(run.path) if d["agent"] == 0)
    assert zero["action"]["note"] == "Unfair!"
    note = zero["calls"][3]
    assert note["attempts"] == 2 and note["invalid_attempts"][0]["reason"] == "empty answer"
    reask = next(r for r in client.calls if r.agent_id == 0 and r.attempt == 1)
    assert reask.messages[-1].content.endswith("Reply again in plain text, as asked above.")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda prompts: prompts.asks() + prompts.asks()[:1],
            "world asks: two asks are named 'appraise'; give each its own",
        ),
        (
            lambda prompts: (Ask("appraise", (), max_reasks=-1),),
            "world asks: 'appraise' has max_reasks -1; give 0 or more",
        ),
        (
            lambda prompts: (Ask("note", (AnswerField("x", "y"),), free_text=True),),
            "world asks: 'note' is free text, which shows no fields; give it none",
        ),
    ],
)
def test_a_world_whose_asks_cannot_run_is_refused_before_the_run(
    tmp_path, monkeypatch, change, message
):
    from tests.three_ask_world import OffersPrompts

    asks = OffersPrompts.asks
    monkeypatch.setattr(
        OffersPrompts, "asks", lambda self: change(type("P", (), {"asks": lambda _: asks(self)})())
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        agora.run(config(), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# Parts that lack a method, as new classes: a runtime protocol remembers a class it once
# matched, so deleting a method from a matched class would prove nothing.
class HalfPrompts(three_ask_world.OffersPrompts):
    decode_turn = None


class MuteOffline(three_ask_world.BeliefOffline):
    answer_ask = None


class PartsPlugin(three_ask_world.OffersPlugin):
    def __init__(self, prompts: type, offline: type) -> None:
        self.prompts, self.offline = prompts, offline

    def build(self, config: Any, seeds: Any) -> Any:
        parts = super().build(config, seeds)
        return type(parts)(parts.world, self.prompts(), self.offline(config.agents))


HALF = PartsPlugin(HalfPrompts, three_ask_world.BeliefOffline)
MUTE = PartsPlugin(three_ask_world.OffersPrompts, MuteOffline)


def test_an_offline_behaviour_that_cannot_answer_asks_is_refused_from_the_cli(tmp_path):
    world = tmp_path / "world.toml"
    world.write_text('[world]\nkind = "tests.test_multi_ask:MUTE"\n[run]\nticks = 1\n')
    result = run_cli("run", str(world), "-q", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(
        "world offline behaviour: MuteOffline has no answer_ask, and this world's turns have "
        "several asks: the offline backend cannot answer them"
    )
    assert not (tmp_path / "run").exists()


def test_half_a_multi_ask_protocol_is_named(tmp_path):
    settings = {"world": {"kind": "tests.test_multi_ask:HALF"}, "run": {"ticks": 1}}
    with pytest.raises(
        ConfigError, match="HalfPrompts has asks, next_ask, decode_ask but not decode_turn"
    ):
        agora.run(settings, out=tmp_path / "run")


class ProfiledPrompts(three_ask_world.OffersPrompts):
    def persona_of(self, agent_id: int) -> str:
        return f"You are player #{agent_id}, {20 + agent_id} years old."


PROFILED = PartsPlugin(ProfiledPrompts, three_ask_world.BeliefOffline)


def test_a_persona_of_its_own_is_each_agents_system_prefix(tmp_path):
    client = ScriptedClient(offline_client())
    settings = {"world": {"kind": "tests.test_multi_ask:PROFILED"}, "run": {"ticks": 2}}
    agora.run(settings, out=tmp_path / "run", client=client)
    for request in client.calls:
        system, first = request.messages[0].content, request.messages[1].content
        rules = "Each round you are offered a share of 10 coins. You may accept it or refuse it."
        persona = f"You are player #{request.agent_id}, {20 + request.agent_id} years old."
        # The rules all agents share, then the agent's own persona, the same every tick.
        assert system == f"{rules}\n\n{persona}"
        assert "You are player" not in first


class TestThreeAskWorld(WorldConformance):
    """The kit on a multi-ask independent world: both schedulers, faults at each ask."""

    config: Mapping[str, Any] = config()
    overrides: Mapping[str, Any] = {"run.ticks": 4}
    missed_metric = "missed"

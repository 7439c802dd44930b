"""The guide's example world (``worlds/gift_network``): the conformance kit, its arithmetic
against hand-computed values, and its run from the CLI as the guide shows it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import pytest

import agora
from agora.testing import WorldConformance
from agora.worlds.gift_network import (
    PLUGIN,
    Gift,
    GiftMessage,
    GiftNetwork,
    GiftNetworkConfig,
    Given,
    Note,
)
from tests.helpers import REPO, of_kind, records, run_cli

CONFIG = REPO / "runs" / "gift_network.toml"


class TestGiftNetwork(WorldConformance):
    config = CONFIG
    overrides: Mapping[str, Any] = {
        "world.agents": 8,
        "run.ticks": 6,
        "policies.nudge.from_tick": 2,
    }
    valid_metric = "gifts"
    missed_metric = "missed"


def triangle() -> GiftNetwork:
    config = GiftNetworkConfig(agents=3, neighbours=2, rewire=0.0, endowment=10, multiplier=2.0)
    return GiftNetwork(config, nx.cycle_graph(3))


def test_a_gift_is_multiplied_and_its_message_reaches_the_next_view():
    world = triangle()
    rng = np.random.default_rng(0)
    outcomes = world.apply(
        0, {0: Gift(1, 4, "for you"), 2: Gift(1, 10, "all of it")}, rng, {1: "invalid"}
    )
    # Each keeps 10 - gift; #1 gave nothing (missed) and gets 2 × (4 + 10).
    assert world.wealth == [6.0, 10.0 + 28.0, 0.0]
    assert world.metrics(0) == {"gifts": 2, "missed": 1, "mean_gift": 7.0, "mean_wealth": 14.6667}
    assert outcomes == {0: Given(1, 4, {}), 2: Given(1, 10, {})}
    inbox = world.observe(1, 1).inbox
    assert inbox == (Note(0, 4, "for you"), Note(2, 10, "all of it"))
    assert world.observe(0, 1).inbox == ()
    assert world.tick_records(0) == [
        GiftMessage(0, 0, 1, 4, "for you"),
        GiftMessage(0, 2, 1, 10, "all of it"),
    ]
    assert world.tick_records(0) == []  # taken once
    # Next tick #1 gives back to #0: the outcome tells #1 what it had been sent.
    outcomes = world.apply(1, {1: Gift(0, 5, "thanks")}, rng, {})
    assert outcomes == {1: Given(0, 5, {})}
    assert world.observe(0, 2).inbox == (Note(1, 5, "thanks"),)


def test_a_bad_gift_is_re_asked_with_the_reason():
    prompts = PLUGIN.build(GiftNetworkConfig(agents=3, neighbours=2), agora.engine.seeding.Seeds(1))
    view = prompts.world.observe(0, 0)
    decode = prompts.prompts.decode_ask
    assert decode("gift", {"to": view.neighbours[0], "coins": 3}, view, {}) == {
        "to": view.neighbours[0],
        "coins": 3,
    }
    for answer, reason in [
        ({"to": 0, "coins": 3}, "#0 is not one of your neighbours"),
        ({"to": view.neighbours[0], "coins": 11}, "coins 11 is not a whole number from 0 to 10"),
        ({"to": view.neighbours[0], "coins": 2.5}, "coins 2.5 is not a whole number"),
        # JSON's true is no number of coins (a Python int, it would be logged as `true`).
        ({"to": view.neighbours[0], "coins": True}, "coins True is not a whole number"),
        ({"to": True, "coins": 1}, "#True is not one of your neighbours"),
    ]:
        with pytest.raises(ValueError, match=re.escape(reason)):
            decode("gift", answer, view, {})


def test_the_offline_givers_remember_who_was_kind():
    parts = PLUGIN.build(GiftNetworkConfig(agents=3, neighbours=2), agora.engine.seeding.Seeds(1))
    givers = parts.offline
    view = parts.world.observe(0, 0)
    rng = np.random.default_rng(0)
    first, _ = givers.answer_ask(0, "gift", view, {}, rng, {})
    assert first["reasoning"].startswith("I share with")
    kind = next(n for n in view.neighbours if n != first["to"])
    givers.remember(0, 0, Given(first["to"], first["coins"], {kind: 6}))
    again, _ = givers.answer_ask(0, "gift", view, {}, rng, {})
    assert again["to"] == kind and again["reasoning"] == f"#{kind} has been kind to me"
    note, _ = givers.answer_ask(0, "message", view, {"gift": again}, rng, {})
    assert note["text"].startswith("Thank you for last round.")


def test_the_guide_runs_it_from_the_cli(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(CONFIG), "-q", "--out", str(out), "--ticks", "6")
    assert result.returncode == 0, result.stderr
    log = records(out / "log.jsonl")
    assert log[0]["world"] == "gift_network"
    decisions = of_kind(log, "decision")
    messages = of_kind(log, "gift_message")
    assert len(messages) == sum(d["valid"] for d in decisions) == 24 * 6
    sent = {(d["tick"], d["agent"]): d["action"]["message"] for d in decisions}
    assert all(sent[(m["tick"], m["sender"])] == m["text"] for m in messages)
    assert all([c["ask"] for c in d["calls"]] == ["gift", "message"] for d in decisions)
    # The nudge is shown from tick 5 on: offline givers read it as a signal to give more.
    ticks = of_kind(log, "tick")
    before = np.mean([t["metrics"]["mean_gift"] for t in ticks[:5]])
    assert ticks[5]["metrics"]["mean_gift"] > before
    frames = agora.load_run(out)
    assert frames.of("gift_message").height == len(messages)
    replayed = run_cli("replay", str(out), "--tick", "3")
    assert replayed.returncode == 0, replayed.stderr
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr

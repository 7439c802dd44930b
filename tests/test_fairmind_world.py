"""The FairMindSim world (issue 14): the conformance kit, the personas against Table 1, the
schedule, the paper's metrics against hand-computed values, the offline agents (BREM's belief
rebuilt on resume), the trial records and the run of ``runs/fairmind.toml``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import agora
from agora.engine.config import ConfigError
from agora.engine.seeding import Seeds
from agora.testing import WorldConformance
from agora.worlds.fairmind import PLUGIN, FairMindConfig, OfflineMix, brem, metrics, personas
from agora.worlds.fairmind.items import SCALES
from agora.worlds.fairmind.offline import FairMindOffline, kind_quotas
from agora.worlds.fairmind.schedule import (
    DEFAULT_SCHEDULE,
    UNFAIR_P2_SHARES,
    default_schedule,
    load_schedule,
    schedule_csv,
)
from agora.worlds.fairmind.world import RoundAnswer, RoundOutcome
from tests.helpers import REPO, of_kind, records, run_cli, without_timing

CONFIG = REPO / "runs" / "fairmind.toml"


class TestFairMind(WorldConformance):
    config = CONFIG
    overrides: Mapping[str, Any] = {"world.agents": 6, "run.ticks": 6}
    valid_metric = "played"
    missed_metric = "missed"

    def valid_turns(self, world: Any) -> Mapping[int, int] | None:
        return {
            agent: sum(not e.choice.startswith("missed") for e in entries)
            for agent, entries in enumerate(world.history)
        }


def answer(choice: str = "ACCEPT", base: int = 0) -> RoundAnswer:
    return RoundAnswer(choice, "because", base, base + 1, base + 2, base + 3, base + 4, base + 5)


def small(agents: int = 3, **settings: Any) -> Any:
    return PLUGIN.build(FairMindConfig(agents=agents, **settings), Seeds(1))


# ---- personas ----------------------------------------------------------------------------------


def test_generated_personas_match_table_1_on_a_large_sample():
    people = personas.generate(4000, Seeds(3))
    ages = np.array([p.age for p in people])
    assert ages.min() >= 18 and abs(ages.mean() - 23.65) < 0.3 and abs(ages.std() - 6.44) < 0.6
    assert abs(np.mean([p.gender == "male" for p in people]) - 0.521) < 0.025
    assert abs(np.mean([p.region == "CN" for p in people]) - 0.818) < 0.02
    assert abs(np.mean([p.region == "US" for p in people]) - 0.049) < 0.012
    for scale in SCALES:
        scores = np.array([p.score(scale) for p in people])
        assert scores.min() >= scale.low and scores.max() <= scale.high
        assert abs(scores.mean() - scale.mean) < 0.06 * scale.sd, scale.key
        assert abs(scores.std() - scale.sd) < 0.1 * scale.sd, scale.key
    svo = [p.svo for p in people]
    assert abs(svo.count("prosocial") / 4000 - 544 / 879) < 0.03
    assert abs(svo.count("competitive") / 4000 - 22 / 879) < 0.01


def test_a_persona_depends_on_the_seed_and_its_agent_alone():
    assert personas.generate(3, Seeds(5)) == personas.generate(8, Seeds(5))[:3]
    assert personas.generate(3, Seeds(5)) != personas.generate(3, Seeds(6))


def write(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_participants_are_read_from_a_csv_of_totals_or_items(tmp_path):
    items = ",".join(f"jsi_{n}" for n in range(1, 11))
    path = write(
        tmp_path,
        f"ID,Age,Gender,Region,SVO,AQ,ERS,CESD,{items},extra\n"
        f"p1,30,F,UK,Pro,70,60,40,{','.join(['3'] * 10)},x\n"
        f"p2,19,male,,individualistic,50,21,20,{','.join(['5'] * 10)},y\n",
    )
    first, second = personas.load(path, 2)
    assert (first.participant, first.age, first.gender, first.region, first.svo) == (
        "p1",
        30,
        "female",
        "UK",
        "prosocial",
    )
    assert (first.aq, first.ers, first.cesd, first.jsi) == (70, 60, 40, 30)
    assert first.items == {"jsi": (3,) * 10}
    assert second.region == "unknown" and second.jsi == 50 and second.svo == "individualistic"
    # The item answers are shown to the agent, the totals always.
    text = personas.render(first)
    assert "JSI answers, item by item: 1: 3, 2: 3" in text and "(JSI): 30" in text
    assert "Forget you are an AI model" in text and "prosocial values" in text
    assert personas.load(path, 1) == [first]


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("age,gender,aq,ers,cesd,jsi\n20,m,60,60,30,30\n", r"people.csv:1: no column 'svo'"),
        (
            "age,gender,svo,aq,ers,cesd\n20,m,pro,60,60,30\n",
            r"people.csv:1: no column 'jsi' \(the Justice .*\) and no items jsi_1 … jsi_10",
        ),
        (
            "age,gender,svo,aq,ers,cesd,jsi\n20,m,pro,60,60,30,30\n20,m,pro,130,60,30,30\n",
            r"people.csv:3: aq 130 is outside 28–112",
        ),
        (
            "age,gender,svo,aq,ers,cesd,jsi\n20,m,pro,sixty,60,30,30\n",
            r"people.csv:2: aq 'sixty' is not a whole number",
        ),
        (
            "age,gender,svo,aq,ers,cesd,jsi\n20,m,altruist,60,60,30,30\n",
            r"people.csv:2: svo 'altruist' is not prosocial, individualistic or competitive",
        ),
        ("age,gender,svo,aq,ers,cesd,jsi\n16,m,pro,60,60,30,30\n", r"people.csv:2: age 16"),
        (
            "age,gender,svo,aq,ers,cesd,jsi,jsi_1\n20,m,pro,60,60,30,30,1\n",
            r"people.csv:1: column 'jsi_2' is missing while other jsi items are there",
        ),
        (
            "age,gender,svo,aq,ers,cesd,jsi\n20,m,pro,60,60,30\n",
            r"people.csv:2: 6 values for 7 columns",
        ),
        ("age,gender,svo,aq,ers,cesd,jsi\n20,m,pro,60,60,30,30\n", r"1 participants, fewer"),
    ],
)
def test_a_bad_persona_file_is_named_in_one_line(tmp_path, csv, message):
    with pytest.raises(ConfigError, match=message) as caught:
        personas.load(write(tmp_path, csv), 2)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("world.personas: ")


def test_items_that_disagree_with_their_total_are_refused(tmp_path):
    items = ",".join(f"jsi_{n}" for n in range(1, 11))
    path = write(
        tmp_path, f"age,gender,svo,aq,ers,cesd,jsi,{items}\n20,m,pro,60,60,30,31,{'3,' * 9}3\n"
    )
    with pytest.raises(ConfigError, match=r"jsi 31 is not the sum of its items \(30\)"):
        personas.load(path, 1)


def test_the_cli_turns_a_bad_persona_file_into_exit_2(tmp_path):
    path = write(tmp_path, "age,gender\n20,m\n")
    result = run_cli(
        "run", str(CONFIG), "-q", "--out", str(tmp_path / "run"), "--set", f"world.personas={path}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"agora: config error: world.personas: {path}:1: no column 'svo'; add it to the header"
    ]


# ---- the schedule ------------------------------------------------------------------------------


def test_the_default_schedule_is_54_unfair_and_6_fair_rounds_in_one_shipped_order():
    shipped = load_schedule(None)
    assert shipped.rounds == default_schedule().rounds
    assert DEFAULT_SCHEDULE.read_text() == schedule_csv(default_schedule())
    unfair = [(s.p2_share, s.cost) for s in shipped.rounds if not s.fair]
    assert sorted(unfair) == [(p2, c) for p2 in UNFAIR_P2_SHARES for c in range(1, 10)]
    fair = [s for s in shipped.rounds if s.fair]
    assert len(fair) == 6 and all(s.p1_share == 15 and 1 <= s.cost <= 9 for s in fair)
    # The order is fixed: the file's first rows, and the same for every agent of a run.
    assert [(s.p1_share, s.p2_share, s.cost) for s in shipped.rounds[:4]] == [
        (15, 15, 6),
        (15, 15, 2),
        (28, 2, 9),
        (30, 0, 6),
    ]
    world = small(3).world
    assert {world.observe(a, 7).split for a in range(3)} == {shipped.rounds[7]}
    assert default_schedule(1).rounds != shipped.rounds


def test_a_user_schedule_replaces_the_default(tmp_path):
    path = write(tmp_path, "round,p1_share,p2_share,cost\n1,20,10,3\n2,15,15,0\n", "s.csv")
    parts = small(2, schedule=str(path))
    assert len(parts.world.schedule) == 2
    assert (
        "study of 2 rounds" in parts.prompts.rules()
        and "from 0 to 3 points" in parts.prompts.rules()
    )


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("", r"s.csv: the file is empty"),
        ("round,p1_share,cost\n1,20,3\n", r"s.csv:1: no column 'p2_share'"),
        ("round,p1_share,p2_share,cost,x\n1,20,10,3,1\n", r"s.csv:1: unknown column 'x'"),
        ("round,p1_share,p2_share,cost\n", r"s.csv: no rounds"),
        ("round,p1_share,p2_share,cost\n1,20,10,3\n3,20,10,3\n", r"s.csv:3: round 3 where round 2"),
        ("round,p1_share,p2_share,cost\n1,20,11,3\n", r"s.csv:2: the split 20:11 does not share"),
        ("round,p1_share,p2_share,cost\n1,10,20,3\n", r"s.csv:2: Player 1 keeps 10 and gives 20"),
        ("round,p1_share,p2_share,cost\n1,20,10,11\n", r"s.csv:2: cost 11 is outside 0–10"),
        ("round,p1_share,p2_share,cost\n1,20,10,2.5\n", r"s.csv:2: cost '2.5' is not a whole"),
    ],
)
def test_a_bad_schedule_is_named_in_one_line(tmp_path, csv, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_schedule(write(tmp_path, csv, "s.csv"))
    assert "\n" not in str(caught.value) and str(caught.value).startswith("world.schedule: ")


def test_a_missing_schedule_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"world.schedule: no schedule file .*nope.csv"):
        load_schedule(tmp_path / "nope.csv")


# ---- the world: rounds, earnings, missed rounds -----------------------------------------------


def test_earnings_carry_across_rounds_and_a_missed_round_pays_nothing_and_logs_no_trial():
    parts = small(2)
    world = parts.world
    rng = np.random.default_rng(0)
    splits = [world.schedule.at(t) for t in range(3)]
    out = world.apply(0, {0: answer("PUNISH"), 1: answer("ACCEPT")}, rng, {})
    assert out[0] == RoundOutcome(1, 15, 15, splits[0].cost, "PUNISH", 10 - splits[0].cost, 4)
    world.apply(1, {1: answer("PUNISH")}, rng, {0: "invalid"})
    # Free-running: agent 1 is a round ahead when tick 1 closes.
    world.apply(2, {1: answer("ACCEPT")}, rng, {})
    assert world.metrics(1) == {
        "played": 1,
        "missed": 1,
        "punished": 1,
        "punish_rate": 1.0,
        "p2_share": 15,
        "cost": splits[1].cost,
        "mean_appraisal_valence": 0.0,
        "mean_appraisal_arousal": 1.0,
        "mean_feedback_valence": 4.0,
        "mean_earnings": (4 + 10 + 10 - splits[1].cost) / 2,
    }
    persona_records = world.tick_records(0)[:2]
    assert [r.agent for r in persona_records] == [0, 1]
    trials = world.tick_records(1)
    assert [(t.agent, t.round, t.choice, t.pay, t.earnings, t.p1_earnings) for t in trials] == [
        (1, 2, "PUNISH", 10 - splits[1].cost, 20 - splits[1].cost, 0)
    ]
    view = world.observe(0, 2)
    assert view.earnings == 4 and [p.choice for p in view.history] == ["PUNISH", None]
    assert "you gave no usable answer" in parts.prompts.private_view(0, view)
    # The digest of tick 1 ignores what agent 1 did in tick 2.
    before = world.digest(1)
    world.apply(2, {0: answer()}, rng, {})
    assert world.digest(1) == before and world.digest(2) != before


def test_answers_are_decoded_or_refused_with_the_reason():
    prompts = small(1).prompts
    view = small(1).world.observe(0, 0)
    decode = prompts.decode_ask
    assert decode("appraisal", {"valence": -40, "arousal": 55.0}, view, {}) == {
        "valence": -40,
        "arousal": 55,
    }
    assert decode(
        "choice", {"reasoning": " so ", "choice": "punish ", "valence": 0, "arousal": 1}, view, {}
    ) == {"choice": "PUNISH", "reasoning": "so", "valence": 0, "arousal": 1}
    for name, bad, reason in [
        ("appraisal", {"valence": 101, "arousal": 0}, '"valence" 101 is not a whole number'),
        ("feedback", {"valence": 0, "arousal": True}, '"arousal" True is not a whole number'),
        ("feedback", {"valence": 0.5, "arousal": 0}, '"valence" 0.5 is not'),
        ("choice", {"choice": "REJECT", "valence": 0, "arousal": 0}, 'neither "ACCEPT"'),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode(name, bad, view, {})


def test_the_asks_go_appraisal_then_choice_then_feedback_with_the_outcome():
    parts = small(1)
    prompts, view = parts.prompts, parts.world.observe(0, 3)  # round 4: 30:0 at cost 6
    assert prompts.next_ask(view, {}).name == "appraisal"
    assert prompts.next_ask(view, {"appraisal": {}}).name == "choice"
    feedback = prompts.next_ask(view, {"appraisal": {}, "choice": {"choice": "PUNISH"}})
    assert feedback.name == "feedback"
    assert "Player 1's earnings for this round are 0" in feedback.prompt
    assert "you paid 6 and keep 4 points" in feedback.prompt
    assert prompts.next_ask(view, {"appraisal": {}, "choice": {}, "feedback": {}}) is None
    assert [a.name for a in prompts.asks()] == ["appraisal", "choice", "feedback"]
    assert [a.reasoning for a in prompts.asks()] == [False, True, False]


# ---- metrics against hand-computed values ------------------------------------------------------

# Two agents, three rounds each: four unfair rounds (P1 > P2), two fair.
TABLE = pl.DataFrame(
    {
        "agent": [0, 0, 0, 1, 1, 1],
        "p1_share": [30, 15, 20, 30, 15, 20],
        "p2_share": [0, 15, 10, 0, 15, 10],
        "cost": [1, 1, 5, 1, 3, 5],
        "choice": ["PUNISH", "PUNISH", "ACCEPT", "PUNISH", "ACCEPT", "PUNISH"],
        # Agent 0: values in three bins / one bin; agent 1: two bins / all in one bin.
        "appraisal_valence": [-100, -95, 100, 0, 5, 50],
        "appraisal_arousal": [10, 10, 10, 20, 20, 20],
        "choice_valence": [0, 0, 0, 0, 0, 0],
        "choice_arousal": [0, 0, 0, 0, 0, 0],
        "feedback_valence": [0, 0, 0, 0, 0, 0],
        "feedback_arousal": [0, 0, 0, 0, 0, 0],
    }
)


def test_the_punishment_rate_counts_unfair_rounds_only():
    # Unfair rows: agent 0 PUNISH, ACCEPT; agent 1 PUNISH, PUNISH → 3 / 4.
    assert metrics.punishment_rate(TABLE) == 0.75
    assert metrics.action_difference(TABLE) == pytest.approx(0.75 - 0.3506)
    assert metrics.action_difference(TABLE, human_rate=0.8) == pytest.approx(0.05)
    numeric = TABLE.with_columns(pl.Series("choice", [1, 1, 0, 1, 0, 1]))
    assert metrics.punishment_rate(numeric) == 0.75
    assert metrics.punishment_rate(TABLE.filter(pl.col("p1_share") == 15)) is None


def test_the_composite_entropy_by_hand():
    # Agent 0's appraisal valence: -100 and -95 share bin 0, 100 is in the last (closed)
    # bin → p = (2/3, 1/3), H = log2(3) − 2/3; the other five series sit in one bin: H = 0.
    h0 = (math.log2(3) - 2 / 3) / 6
    # Agent 1: 0 and 5 share bin 10, 50 is in bin 15 → the same H; again / 6.
    h1 = (math.log2(3) - 2 / 3) / 6
    assert metrics.emotional_entropy(TABLE) == pytest.approx((h0 + h1) / 2)
    # Pooled: appraisal valence in bins 0, 0, 19, 10, 10, 15 → p = (2, 2, 1, 1)/6; arousal
    # in two bins (10 and 20), each 3/6 → 1 bit; the rest 0.
    pooled = -(2 * (1 / 3) * math.log2(1 / 3) + 2 * (1 / 6) * math.log2(1 / 6)) + 1.0
    assert metrics.emotional_entropy(TABLE, per_agent=False) == pytest.approx(pooled / 6)
    assert metrics.series_entropy([7, 7, 7]) == 0.0
    assert metrics.series_entropy(np.linspace(-100, 100, 2001)) == pytest.approx(
        math.log2(20), abs=1e-3
    )


def test_the_punishment_surface_over_inequity_and_cost():
    surface = metrics.punishment_surface(TABLE)
    assert surface.select("inequity", "cost", "n", "punished", "rate").rows() == [
        (0.0, 1, 1, 1, 1.0),
        (0.0, 3, 1, 0, 0.0),
        (pytest.approx(1 / 3), 5, 2, 1, 0.5),
        (1.0, 1, 2, 2, 1.0),
    ]
    row = metrics.table2_row(TABLE)
    assert row["agents"] == 2 and row["trials"] == 6 and row["punishment_rate"] == 0.75


# ---- the offline agents ------------------------------------------------------------------------


def test_offline_kinds_come_in_seeded_quotas_or_alone():
    assert kind_quotas(OfflineMix(), 10) == ["brem"] * 6 + ["inequity_aversion"] * 3 + ["rational"]
    assert kind_quotas(OfflineMix(kind="rational"), 3) == ["rational"] * 3
    offline = small(20).offline
    assert offline.describe()["counts"] == {"brem": 12, "inequity_aversion": 6, "rational": 2}
    assert {a["kind"] for a in offline.describe()["agents"]} == {
        "brem",
        "inequity_aversion",
        "rational",
    }


def test_the_brem_belief_moves_by_prediction_error_from_what_it_is_told():
    parts = small(1, offline=OfflineMix(kind="brem"))
    offline: FairMindOffline = parts.offline
    params = offline.params[0]
    outcomes = [
        RoundOutcome(1, 30, 0, 3, "PUNISH", 7, 7),
        RoundOutcome(2, 20, 10, 2, "ACCEPT", 10, 17),
        RoundOutcome(3, 26, 4, 9, "PUNISH", 1, 18),
    ]
    belief, history = 1.0, []
    for outcome in outcomes:
        z = brem.earnings_z(history)
        e = (outcome.p1_share - outcome.p2_share) / 30
        p = 1 / (1 + math.exp(-(params.beta1 * belief * e + params.beta2 * z - params.c)))
        belief += params.eta * ((outcome.choice == "PUNISH") - p)
        history.append(outcome.earnings)
        offline.remember(0, outcome.round - 1, outcome)
    assert offline.state[0].belief == pytest.approx(belief)
    assert offline.state[0].earnings == [7.0, 17.0, 18.0]


def test_offline_affect_responds_to_inequity_and_punishing_recovers_valence():
    parts = small(1, offline=OfflineMix(kind="inequity_aversion", affect_noise=0.0))
    offline, world = parts.offline, parts.world
    fair, worst = world.observe(0, 0), world.observe(0, 3)  # 15:15, then 30:0
    rng = np.random.default_rng(0)
    calm = offline.answer_ask(0, "appraisal", fair, {}, rng, {})[0]
    upset = offline.answer_ask(0, "appraisal", worst, {}, rng, {})[0]
    assert upset["valence"] < calm["valence"] and upset["arousal"] > calm["arousal"]
    after_punish = offline.answer_ask(
        0, "feedback", worst, {"choice": {"choice": "PUNISH"}}, rng, {}
    )[0]
    after_accept = offline.answer_ask(
        0, "feedback", worst, {"choice": {"choice": "ACCEPT"}}, rng, {}
    )[0]
    assert after_accept["valence"] < upset["valence"] < after_punish["valence"]
    fields, stance = offline.answer_ask(0, "choice", worst, {}, rng, {})
    assert fields["reasoning"].startswith("[offline inequity_aversion agent, not a language model]")
    assert stance in ("punish", "accept")


def test_a_stopped_run_resumes_with_the_offline_belief_rebuilt(tmp_path):
    def run(out: Path) -> Any:
        return agora.run(
            CONFIG,
            out=out,
            ticks=8,
            overrides={"world.agents": 4, "world.offline.kind": "brem"},
        )

    whole = run(tmp_path / "whole")
    log = (whole.path / "log.jsonl").read_text().splitlines(keepends=True)
    cut = [i for i, line in enumerate(log) if '"kind":"tick"' in line][2]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "log.jsonl").write_text("".join(log[: cut + 1]))
    result = run_cli("resume", str(broken), "-q")
    assert result.returncode == 0, result.stderr

    def tail(path: Path) -> list[Any]:
        kept = [
            r
            for r in records(path / "log.jsonl")
            if r["kind"] in ("decision", "tick", "fairmind_trial")
        ]
        return [without_timing(r) for r in kept if r["tick"] >= 3]

    assert tail(broken) == tail(whole.path)
    # The beliefs did move: a resume that forgot them would have answered otherwise.
    beliefs = {
        r["reasoning"].split("belief in the norm is ")[1][:4]
        for r in of_kind(records(whole.path / "log.jsonl"), "fairmind_trial")
    }
    assert len(beliefs) > 1


# ---- the run ------------------------------------------------------------------------------------


def test_the_default_run_completes_from_the_cli_with_one_trial_per_decision(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(CONFIG), "-q", "--out", str(out))
    assert result.returncode == 0, result.stderr
    log = records(out / "log.jsonl")
    header = log[0]
    assert header["world"] == "fairmind" and header["scheduler"] == "free-running"
    assert header["records"] == {"fairmind_trial": "world", "fairmind_persona": "world"}
    assert header["world_info"]["offline"]["model"].startswith("offline behavioural agents")
    decisions = of_kind(log, "decision")
    assert len(decisions) == 20 * 60 and all(d["valid"] for d in decisions)
    assert all(
        [c["ask"] for c in d["calls"]] == ["appraisal", "choice", "feedback"] for d in decisions
    )
    frames = agora.load_run(out)
    trials = frames.of("fairmind_trial")
    assert trials.height == len(decisions)
    chosen = {(d["tick"], d["agent"]): d["action"]["choice"] for d in decisions}
    assert all(chosen[(t, a)] == c for t, a, c in trials.select("tick", "agent", "choice").rows())
    assert frames.of("fairmind_persona").height == 20
    # Earnings add up round by round.
    last = trials.filter(pl.col("round") == 60).sort("agent")
    assert (
        last["earnings"].to_list()
        == trials.group_by("agent").agg(pl.col("pay").sum()).sort("agent")["pay"].to_list()
    )
    # The offline agents punish worse splits more and feel worse about them.
    rate = metrics.punishment_rate(trials)
    assert rate is not None and 0.1 < rate < 0.9
    by_e = (
        trials.with_columns(metrics.punished(trials))
        .group_by("p2_share")
        .agg(pl.col("appraisal_valence").mean(), pl.col("punished").mean())
        .sort("p2_share")
    )
    assert by_e["appraisal_valence"].is_sorted()
    assert by_e["punished"][0] > by_e["punished"][-1]
    replayed = run_cli("replay", str(out), "--tick", "59", "--agent", "3")
    assert replayed.returncode == 0, replayed.stderr


def test_errored_rounds_asked_again_give_the_clean_run(tmp_path, monkeypatch):
    """``resume --retry-errors``: each agent that failed plays again from its failed round,
    the others are kept, and the trials and digests end as in a run without errors."""
    import asyncio

    import agora.engine.runner as runner_module
    from agora.engine.inference.errors import InferenceError
    from agora.engine.replay import read_run
    from agora.engine.resume import prepare_resume

    overrides = {"world.agents": 4, "world.offline.kind": "brem"}
    clean = agora.run(CONFIG, out=tmp_path / "clean", ticks=6, overrides=overrides)
    real = runner_module.build_client
    broken = {(1, 2), (3, 0)}

    class Failing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def complete(self, request: Any) -> Any:
            if (request.tick, request.agent_id) in broken:
                raise InferenceError("HTTP 500: down", retryable=False)
            return await self.inner.complete(request)

    monkeypatch.setattr(runner_module, "build_client", lambda *a, **k: Failing(real(*a, **k)))
    failed = agora.run(
        CONFIG,
        out=tmp_path / "run",
        ticks=6,
        overrides={**overrides, "run.max_error_rate": 1.0},
    )
    trials = agora.load_run(failed.path).of("fairmind_trial")
    assert trials.height == 24 - 2
    ticks = of_kind(records(failed.path / "log.jsonl"), "tick")
    assert [t["metrics"]["missed"] for t in ticks] == [0, 1, 0, 1, 0, 0]

    monkeypatch.setattr(runner_module, "build_client", real)
    plan, resumption = prepare_resume(failed.path, retry_errors=True)
    asyncio.run(runner_module.execute(plan, resume=resumption))

    def table(path: Path) -> list[Any]:
        return sorted(agora.load_run(path).of("fairmind_trial").rows())

    assert table(failed.path) == table(clean.path)
    assert agora.load_run(failed.path).of("fairmind_persona").height == 4
    logged, whole = read_run(failed.path), read_run(clean.path)
    assert [logged.ticks[t][1].digest for t in sorted(logged.ticks)] == [
        whole.ticks[t][1].digest for t in sorted(whole.ticks)
    ]


def test_a_schedule_file_edited_after_the_run_fails_its_replay(tmp_path):
    # Files are read again by replay and resume (from the config's path): the digest covers
    # what the rounds were played on, so an edit is caught at the first tick.
    schedule = write(tmp_path, "round,p1_share,p2_share,cost\n1,20,10,3\n2,30,0,1\n", "s.csv")
    out = tmp_path / "run"
    ran = agora.run(
        CONFIG, out=out, ticks=2, overrides={"world.agents": 2, "world.schedule": str(schedule)}
    )
    assert ran.path == out and run_cli("replay", str(out)).returncode == 0
    schedule.write_text("round,p1_share,p2_share,cost\n1,20,10,4\n2,30,0,1\n")
    replayed = run_cli("replay", str(out))
    assert replayed.returncode == 2 and "tick 0 replays to digest" in replayed.stderr

"""ProSim (issue 15): the two worlds through the conformance kit, the contagion rule on a
hand-built graph, mediation against a known synthetic effect, the graph loader's and the
persona CSV's errors, the inequity policy's seeds, the offline effects and null condition, and
the three studies' one report from the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import polars as pl
import pytest

import agora
from agora.engine.config import ConfigError
from agora.engine.seeding import Seeds
from agora.policies.inequity import pick_seeds
from agora.testing import WorldConformance
from agora.worlds.prosim import NETWORK as NETWORK_PLUGIN
from agora.worlds.prosim import analysis, personas
from agora.worlds.prosim.config import NetworkConfig
from agora.worlds.prosim.graph_io import load_graph
from agora.worlds.prosim.network import DayAnswer, NetworkWorld, ProSimChange, ProSimDelivery
from agora.worlds.prosim.texts import load_scenarios
from tests.helpers import REPO, one_line_exit_2, run_cli

SCENARIOS = REPO / "runs" / "prosim_scenarios.toml"
NETWORK = REPO / "runs" / "prosim_network.toml"
PUNISHMENT = REPO / "runs" / "prosim_punishment.toml"


class TestProSimScenarios(WorldConformance):
    config = SCENARIOS
    overrides: Mapping[str, Any] = {
        "world.agents": 5,
        "world.interventions": ["none", "enforce"],
        "run.ticks": 2,
    }
    valid_metric = "answered"
    missed_metric = "missed"

    def valid_turns(self, world: Any) -> Mapping[int, int]:
        return {a: sum(q is not None for q in rows) for a, rows in enumerate(world.answered)}


class TestProSimNetwork(WorldConformance):
    config = NETWORK
    overrides: Mapping[str, Any] = {
        "world.agents": 10,
        "world.graph.neighbours": 4,
        "world.activation_rate": 0.6,
        "run.ticks": 5,
    }
    valid_metric = "answered"
    missed_metric = "missed"

    def valid_turns(self, world: Any) -> Mapping[int, int]:
        return {a: sum(d is not None for d in rows) for a, rows in enumerate(world.days)}


class TestProSimPunishment(WorldConformance):
    config = PUNISHMENT
    overrides: Mapping[str, Any] = {"world.agents": 6, "run.ticks": 6}
    valid_metric = "played"
    missed_metric = "missed"

    def valid_turns(self, world: Any) -> Mapping[int, int]:
        return {
            agent: sum(not e.choice.startswith("missed") for e in entries)
            for agent, entries in enumerate(world.history)
        }


# ---- the contagion rule, by hand ---------------------------------------------------------------


class Treats:
    """A stand-in policy: shows agent 0 its treatment from tick 1 on."""

    name = "stand_in"

    def view(self, agent_id: int, tick: int) -> str | None:
        return "unfair" if agent_id == 0 and tick >= 1 else None

    def offline_signals(self, view: Any) -> Mapping[str, float]:
        return {"inequity": 1.0} if view else {}


def path_world() -> NetworkWorld:
    # 0 — 1 — 2 — 3, every edge active every day.
    config = NetworkConfig(agents=4, activation_rate=1.0)
    seeds = Seeds(0)
    world = NetworkWorld(
        config,
        nx.path_graph(4),
        personas.generate(4, seeds),
        load_scenarios(None).by_key("volunteering"),
        seeds,
        "generated",
    )
    world.see_policies([Treats()])  # type: ignore[list-item]
    return world


def day(world: NetworkWorld, tick: int, ratings: Sequence[tuple[int, int]]) -> list[Any]:
    for agent in world.agent_ids():
        world.observe(agent, tick)
    actions = {a: DayAnswer(w, u, "") for a, (w, u) in enumerate(ratings)}
    world.apply(tick, actions, np.random.default_rng(0), {})
    return world.tick_records(tick)


def test_the_contagion_rule_on_a_path_graph_gives_the_hand_worked_states():
    world = path_world()
    day(world, 0, [(5, 2)] * 4)
    assert world.state == ["unaffected"] * 4  # nobody treated on day 1
    records = day(world, 1, [(5, 2)] * 4)
    assert world.state == ["seed", "unaffected", "unaffected", "unaffected"]
    assert next(r for r in records if isinstance(r, ProSimChange)).cause == "treated"
    # Day 3: 1 is told by 0 and falls and resents: affected. 2 does the same, untold: not.
    records = day(world, 2, [(5, 2), (4, 3), (4, 3), (5, 2)])
    assert world.state == ["seed", "affected", "unaffected", "unaffected"]
    deliveries = [(r.sender, r.recipient) for r in records if isinstance(r, ProSimDelivery)]
    assert deliveries == [(0, 1)]
    change = next(r for r in records if isinstance(r, ProSimChange))
    assert (change.agent, change.exposed_by, change.previous_willingness) == (1, [0], 5)
    # Day 4: 2 is told by 1, but its willingness does not fall (4 → 4): still unaffected.
    day(world, 3, [(5, 2), (4, 3), (4, 5), (5, 2)])
    assert world.state[2] == "unaffected"
    # Day 5: 2 falls (4 → 3) and resents more (5 → 6): affected. 3 is untold (2 was not
    # affected yesterday), though its ratings move the same way.
    records = day(world, 4, [(5, 2), (4, 3), (3, 6), (4, 3)])
    assert world.state == ["seed", "affected", "affected", "unaffected"]
    assert sorted((r.sender, r.recipient) for r in records if isinstance(r, ProSimDelivery)) == [
        (0, 1),
        (1, 0),
        (1, 2),
    ]
    assert world.metrics(4)["affected"] == 3


def test_a_missed_day_is_skipped_in_the_comparison():
    world = path_world()
    day(world, 0, [(5, 2)] * 4)
    day(world, 1, [(5, 2)] * 4)
    for agent in world.agent_ids():
        world.observe(agent, 2)
    # Agent 1 misses day 3; on day 4 it is compared with day 2.
    actions = {a: DayAnswer(5, 2, "") for a in (0, 2, 3)}
    world.apply(2, actions, np.random.default_rng(0), {1: "invalid"})
    day(world, 3, [(5, 2), (4, 3), (5, 2), (5, 2)])
    assert world.state[1] == "affected"
    assert world.observe(1, 4).history[-2].day == 2


# ---- mediation ---------------------------------------------------------------------------------


def test_mediation_recovers_a_known_indirect_effect_within_its_interval():
    rng = np.random.default_rng(3)
    agents, days = 150, 6
    cluster = np.repeat(np.arange(agents), days)
    x = (rng.random(agents * days) < 0.4).astype(float)
    m = 1.0 + 2.0 * x + rng.normal(0, 1, agents * days)
    y = 3.0 - 0.5 * m - 0.3 * x + rng.normal(0, 1, agents * days)
    result = analysis.mediation(x, m, y, cluster, np.random.default_rng(0), resamples=400)
    assert result.low < -1.0 < result.high  # a·b = 2 × −0.5
    assert abs(result.a - 2.0) < 0.15 and abs(result.b + 0.5) < 0.08
    assert result.total == pytest.approx(result.direct + result.indirect, abs=1e-9)
    assert result.clusters == agents and result.resamples == 400


def test_mediation_without_a_mediated_path_has_an_interval_around_zero():
    rng = np.random.default_rng(4)
    n = 600
    x = (rng.random(n) < 0.5).astype(float)
    m = rng.normal(0, 1, n)  # X does not move M
    y = 1.0 - 0.8 * x + 0.5 * m + rng.normal(0, 1, n)
    result = analysis.mediation(x, m, y, np.arange(n), np.random.default_rng(0), resamples=400)
    assert result.low < 0.0 < result.high
    with pytest.raises(ValueError, match="does not vary"):
        analysis.mediation(np.zeros(n), m, y, np.arange(n), np.random.default_rng(0))


def test_mean_ci_matches_a_hand_computed_t_interval():
    ci = analysis.mean_ci([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd 1.2910, t(0.975, 3) = 3.1824: half-width 2.0543.
    assert (ci.mean, round(ci.low, 3), round(ci.high, 3)) == (2.5, 0.446, 4.554)


# ---- personas ----------------------------------------------------------------------------------


def test_bands_follow_the_sd_cut_points():
    assert [personas.band(z) for z in (-2.5, -1.5, 0.0, 1.0, 1.5, 2.5)] == [
        "very low",
        "low",
        "average",
        "average",
        "high",
        "very high",
    ]


def test_generated_personas_follow_the_specs_moments():
    people = personas.generate(3000, Seeds(5))
    scores = {t.key: np.array([p.scores[t.key] for p in people]) for t in personas.TRAITS}
    assert abs(scores["agreeableness"].mean() - 3.69) < 0.03
    assert abs(scores["empathic_concern"].mean() - 3.0) < 0.03
    assert all(v.min() >= 1.0 and v.max() <= 5.0 for v in scores.values())
    incomes = [p.income for p in people]
    assert set(incomes) == set(personas.INCOME_QUINTILES)
    assert all(abs(incomes.count(q) / 3000 - 0.2) < 0.03 for q in personas.INCOME_QUINTILES)
    assert abs(sum(p.gender == "male" for p in people) / 3000 - 0.511) < 0.03
    assert personas.generate(3, Seeds(5)) == people[:3]
    text = personas.render(people[0])
    assert "population average 3.69" in text and "Forget that you are an AI" in text


def persona_csv(path: Any, rows: int = 4, **override: str) -> None:
    columns = ["id", "gender", "age", "income", *(t.key for t in personas.TRAITS)]
    lines = [",".join(columns)]
    for n in range(rows):
        values = {"id": f"p{n}", "gender": "female", "age": "30-34", "income": "20442"}
        values |= {t.key: "3.5" for t in personas.TRAITS}
        if n == 1:
            values |= override
        lines.append(",".join(values[c] for c in columns))
    path.write_text("\n".join(lines) + "\n")


def test_a_persona_csv_is_read_and_its_bad_rows_are_named(tmp_path):
    good = tmp_path / "people.csv"
    persona_csv(good)
    people = personas.load(good, 4)
    assert people[0].participant == "p0" and people[0].scores["openness"] == 3.5
    bad = tmp_path / "bad.csv"
    persona_csv(bad, openness="9")
    with pytest.raises(ConfigError, match=r"bad.csv:3: openness 9 is outside 1–5"):
        personas.load(bad, 4)
    result = run_cli(
        "run", str(SCENARIOS), "--out", str(tmp_path / "run"), "--set",
        f"world.personas={bad}", "--set", "world.agents=4",
    )  # fmt: skip
    one_line_exit_2(result, "bad.csv:3", "openness")
    result = run_cli(
        "run", str(SCENARIOS), "--out", str(tmp_path / "run2"), "--set",
        f"world.personas={good}", "--set", "world.agents=9",
    )  # fmt: skip
    one_line_exit_2(result, "4 people, fewer than world.agents = 9")


# ---- the graph loader --------------------------------------------------------------------------


def test_an_edge_list_and_graphml_load_as_agents_in_file_order(tmp_path):
    edges = tmp_path / "g.edgelist"
    edges.write_text("# a square\nb a\na,c\nc d\nd b\ne\n")
    graph = load_graph(edges, 5)
    assert (
        sorted(graph.edges()) == [(0, 1), (0, 3), (1, 2), (2, 3)] and graph.number_of_nodes() == 5
    )
    source = nx.relabel_nodes(nx.cycle_graph(6), {n: f"n{n}" for n in range(6)})
    nx.write_graphml(source, tmp_path / "g.graphml")
    loaded = load_graph(tmp_path / "g.graphml", 4)  # the first four nodes and their edges
    assert sorted(loaded.edges()) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("g.gml", "a b\n", "unknown graph format '.gml'"),
        ("g.txt", "a b c\n", "g.txt:1: 3 names"),
        ("g.txt", "a b\nc c\n", "g.txt:2: a self-loop on 'c'"),
        ("g.txt", "# nothing\n", "the graph has no nodes"),
        ("g.txt", "a b\nb c\n", "3 nodes, fewer than world.agents = 10"),
        (
            "g.graphml",
            '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph>'
            '<node id="a"/><edge source="a" target="z"/></graph></graphml>',
            "names node 'z', which the file does not declare",
        ),
        ("g.graphml", "<graphml><graph>", "not GraphML"),
    ],
)
def test_a_bad_graph_file_is_one_line_naming_it_and_exit_2(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    result = run_cli(
        "run", str(NETWORK), "--out", str(tmp_path / "run"), "--set", "world.agents=10",
        "--set", f"world.graph.file={path}",
    )  # fmt: skip
    one_line_exit_2(result, "world.graph.file", needle)


# ---- the inequity policy -----------------------------------------------------------------------


class Scores:
    def __init__(self, values: Sequence[float], second: Sequence[float] = ()) -> None:
        self.values = values
        self.second = second

    def agent_score(self, agent_id: int, key: str) -> float:
        return self.second[agent_id] if key == "second" else self.values[agent_id]

    def score_known_from(self, key: str) -> int:
        return 0


def test_seeds_are_the_extremes_with_ties_broken_by_the_seed():
    world = Scores([5.0, 1.0, 3.0, 1.0, 9.0, 1.0])
    rng = np.random.default_rng
    income = ("income",)
    assert pick_seeds(world, range(6), income, "highest", 2, rng(0)) == [0, 4]
    lowest = {tuple(pick_seeds(world, range(6), income, "lowest", 2, rng(s))) for s in range(20)}
    assert lowest <= {(1, 3), (1, 5), (3, 5)} and len(lowest) > 1
    # The same stream picks the same agents; the cut among equals is the stream's, never the
    # agents' numbers (agent 5 is picked by some streams, agent 1 left out by some).
    assert pick_seeds(world, range(6), income, "lowest", 2, rng(7)) == pick_seeds(
        world, range(6), income, "lowest", 2, rng(7)
    )
    assert any(5 in pair for pair in lowest) and any(1 not in pair for pair in lowest)


def test_a_second_score_breaks_ties_and_a_missing_score_ranks_last():
    nan = float("nan")
    world = Scores([7.0, 7.0, 7.0, nan, 6.0], second=[0.1, 0.9, 0.5, 9.0, 9.0])
    keys = ("first", "second")
    rng = np.random.default_rng
    # The three 7s, then by the second score: agents 1 and 2; agent 3 (no first score) never.
    assert {tuple(pick_seeds(world, range(5), keys, "highest", 2, rng(s))) for s in range(10)} == {
        (1, 2)
    }
    assert pick_seeds(world, range(5), keys, "lowest", 1, rng(0)) == [4]
    # Lowest first, the agent without a score still comes last: never among the first four.
    assert all(3 not in pick_seeds(world, range(5), keys, "lowest", 4, rng(s)) for s in range(10))


class IndependentScores(Scores):
    independent = True

    def agent_ids(self) -> list[int]:
        return list(range(len(self.values)))

    def score_known_from(self, key: str) -> int:
        return 1 if key == "willingness" else 0


def test_answer_scores_are_refused_on_an_independent_world():
    from agora.policies.inequity import PLUGIN, InequityConfig

    world = IndependentScores([1.0, 2.0, 3.0])
    config = InequityConfig(rank_by="willingness", from_tick=2)
    with pytest.raises(ConfigError, match="independent world"):
        PLUGIN.build(config, Seeds(0), "unfair", world)  # type: ignore[arg-type]
    built = PLUGIN.build(InequityConfig(rank_by="income", seeds=1), Seeds(0), "unfair", world)  # type: ignore[arg-type]
    assert built.view(2, 0) is None and built.view(2, 1) is not None and built.view(0, 1) is None


def three_day_run(tmp_path: Any, *sets: str) -> Any:
    """The network run for 3 days with 3 seeds, ``sets`` applied; its frames."""
    out = tmp_path / "run"
    args = [a for s in ("run.ticks=3", "policies.inequity.seeds=3", *sets) for a in ("--set", s)]
    result = run_cli("run", str(NETWORK), "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return agora.load_run(out)


def test_economic_reward_treats_the_top_first_day_willingness(tmp_path):
    frames = three_day_run(tmp_path, "world.agents=30")
    first = dict(
        frames.of("prosim_day")
        .filter(pl.col("tick") == 0)
        .select("agent", "willingness")
        .iter_rows()
    )
    kind = dict(frames.of("prosim_persona").select("agent", "prosociality").iter_rows())
    treated = set(frames.of("inequity_notice")["agent"].to_list())
    others = set(first) - treated
    assert len(treated) == 3
    # Every treated agent answered day 1 at least as willing as every other one; among the
    # equally willing at the cut, the more prosocial were picked.
    cut = min(first[a] for a in treated)
    assert cut >= max(first[a] for a in others)
    tied = [a for a in others if first[a] == cut]
    assert all(kind[t] >= kind[o] for t in treated if first[t] == cut for o in tied)


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (("policies.inequity.from_tick=0",), "policies.inequity.from_tick"),
        (("policies.inequity.stance=unfair",), "world.treatment_signal"),
        (("policies.inequity.rank_by=height",), "policies.inequity.rank_by"),
    ],
)
def test_a_policy_the_world_cannot_follow_is_one_line(tmp_path, sets, needle):
    args = [a for s in sets for a in ("--set", s)]
    result = run_cli("run", str(NETWORK), "--out", str(tmp_path / "run"), *args)
    one_line_exit_2(result, needle)
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_enforce_burden_treats_the_lowest_incomes(tmp_path):
    frames = three_day_run(tmp_path, "policies.inequity.treatment=enforce_burden")
    incomes = dict(frames.of("prosim_persona").select("agent", "income").iter_rows())
    notices = frames.of("inequity_notice")
    treated = set(notices["agent"].to_list())
    assert len(treated) == 3 and set(notices["tick"].to_list()) == {1, 2}
    assert max(incomes[a] for a in treated) == min(incomes.values())
    seeded = frames.of("prosim_change").filter(pl.col("cause") == "treated")
    assert set(seeded["agent"].to_list()) == treated and set(seeded["tick"].to_list()) == {1}


def test_the_policy_on_a_world_without_scores_is_one_line(tmp_path):
    config = tmp_path / "gift.toml"
    text = (REPO / "runs" / "gift_network.toml").read_text()
    config.write_text(text + '\n[policies.unfair]\nkind = "inequity"\n')
    result = run_cli("run", str(config), "--out", str(tmp_path / "run"))
    one_line_exit_2(result, "policies.unfair", "no scores to pick seeds by")


# ---- offline effects, the null condition, the report -------------------------------------------


def test_offline_policy_effects_are_found_in_their_directions(tmp_path):
    out = tmp_path / "s1"
    result = run_cli("run", str(SCENARIOS), "--out", str(out), "--set", "world.agents=40")
    assert result.returncode == 0, result.stderr
    ratings = agora.load_run(out).of("prosim_rating")
    assert len(ratings) == 40 * 6 * 5
    assert ratings["belief"].str.len_chars().min() > 0
    effects = {r[0]: r for r in analysis.intervention_effects(ratings).iter_rows()}
    # The offline model's documented effects: economic +0.8, social +0.5, moral +0.4,
    # enforce −0.4; each interval excludes zero on the side it was built.
    assert effects["economic"][2] > 0 and effects["social"][2] > 0 and effects["moral"][2] > 0
    assert effects["enforce"][3] < 0
    assert effects["economic"][1] > effects["moral"][1]


def test_inequity_spreads_and_the_null_condition_finds_none(tmp_path):
    treated, null = tmp_path / "treated", tmp_path / "null"
    args = ("--set", "world.agents=40", "--set", "run.ticks=12")
    assert run_cli("run", str(NETWORK), "--out", str(treated), *args).returncode == 0
    result = run_cli(
        "run", str(NETWORK), "--out", str(null), *args, "--set", "policies.inequity.enabled=false"
    )
    assert result.returncode == 0, result.stderr
    spread = agora.load_run(treated).of("tick")["metrics"].struct.field("affected").to_list()
    assert spread[0] == 0 and spread[1] == 2 and spread[-1] > 10
    changes = agora.load_run(treated).of("prosim_change")
    assert changes["agent"].n_unique() == len(changes) == spread[-1]  # each agent changes once
    none = agora.load_run(null)
    assert none.of("prosim_change").is_empty() and none.of("prosim_delivery").is_empty()
    days = agora.load_run(treated).of("prosim_day")
    mediated = analysis.contagion_mediation(days, np.random.default_rng(0), resamples=200)
    assert mediated.a > 0 and mediated.b < 0 and mediated.high < 0


def test_a_fixed_share_of_the_edges_is_active_each_day():
    config = NetworkConfig(agents=30, activation_rate=0.3)
    seeds = Seeds(3)
    graph = nx.watts_strogatz_graph(30, 6, 0.2, seed=1)
    world = NetworkWorld(
        config,
        graph,
        personas.generate(30, seeds),
        load_scenarios(None).by_key("volunteering"),
        seeds,
        "generated",
    )
    days = [world.active_edges(t) for t in range(5)]
    assert all(len(d) == round(0.3 * 90) == 27 for d in days)
    assert all(set(d) <= set(world.edges) and len(set(d)) == len(d) for d in days)
    assert len({d for d in days}) == 5  # a new draw each day
    assert NETWORK_PLUGIN.tick_name(4) == "day 5"


def test_policy_mediation_recovers_a_known_effect_across_conditions():
    rng = np.random.default_rng(11)
    agents, ticks = 60, 6

    def days(policy: float) -> pl.DataFrame:
        rows = []
        for agent in range(agents):
            for tick in range(ticks):
                unfair = 2.0 + (1.5 * policy if tick >= 1 else 0.0) + rng.normal(0, 0.5)
                will = 5.0 - 0.4 * unfair - (0.3 * policy if tick >= 1 else 0.0)
                rows.append((tick, agent, will + rng.normal(0, 0.5), unfair))
        return pl.DataFrame(
            rows, schema=["tick", "agent", "willingness", "unfairness"], orient="row"
        )

    result = analysis.policy_mediation(days(1.0), days(0.0), rng, resamples=300, from_tick=1)
    assert result.rows == 2 * agents * (ticks - 1) and result.clusters == agents
    assert result.low < 1.5 * -0.4 < result.high
    assert result.direct == pytest.approx(-0.3, abs=0.12)


def test_intervention_effects_pair_the_same_tick():
    # Each agent rates exactly 1 higher under "moral" than with no policy on the same tick;
    # agent 0 met "moral" only on tick 1, after its no-policy rating moved from 2 to 6, so
    # pairing it with tick 0 too would give it +3.
    rows = [
        (0, 0, "a", "none", 2), (1, 0, "a", "none", 6), (1, 0, "a", "moral", 7),
        (0, 1, "a", "none", 4), (0, 1, "a", "moral", 5),
    ]  # fmt: skip
    ratings = pl.DataFrame(
        rows, schema=["tick", "agent", "scenario", "intervention", "willingness"], orient="row"
    )
    effects = analysis.intervention_effects(ratings)
    assert effects.row(0) == ("moral", 1.0, 1.0, 1.0, 2)


def test_the_three_studies_make_one_report(tmp_path):
    runs = {
        "scenarios": (SCENARIOS, ("--set", "world.agents=8")),
        "punishment": (PUNISHMENT, ("--set", "world.agents=4", "--set", "run.ticks=12")),
        "network": (NETWORK, ("--set", "world.agents=20", "--set", "run.ticks=6")),
    }
    for name, (config, args) in runs.items():
        result = run_cli("run", str(config), "--out", str(tmp_path / name), *args)
        assert result.returncode == 0, result.stderr
    out = tmp_path / "report"
    result = run_cli(
        "prosim-report", "--scenarios", str(tmp_path / "scenarios"), "--punishment",
        str(tmp_path / "punishment"), "--network", str(tmp_path / "network"), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    for heading in ("Study 1", "Study 2", "Study 3", "a·b: indirect", "offline behavioural model"):
        assert heading in report
    for picture in ("prosim_willingness.png", "prosim_punishment.png", "prosim_contagion.png"):
        assert (out / picture).stat().st_size > 1000
    assert (
        len(list((out / "graph").glob("tick_*.png"))) == 6 and (out / "graph" / "run.gif").exists()
    )
    wrong = run_cli("prosim-report", "--network", str(tmp_path / "scenarios"), "--out", str(out))
    one_line_exit_2(wrong, "--network", "'prosim_scenarios' run")
    single = run_cli("report", str(tmp_path / "network"))
    assert single.returncode == 0, single.stderr
    assert "ProSim Study 3" in (tmp_path / "network" / "report" / "report.md").read_text()


def test_a_report_on_the_null_run_and_a_csv_edge_list_with_a_header(tmp_path):
    edges = tmp_path / "g.csv"
    edges.write_text("source,target\n" + "".join(f"{i},{(i + 1) % 6}\n" for i in range(6)))
    assert sorted(load_graph(edges, 6).edges()) == sorted(nx.cycle_graph(6).edges())
    null = tmp_path / "null"
    result = run_cli(
        "run", str(NETWORK), "--out", str(null), "--set", "world.agents=12",
        "--set", "run.ticks=3", "--set", "policies.inequity.enabled=false",
        "--set", f"world.graph.file={edges}", "--set", "world.agents=6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    single = run_cli("report", str(null))
    assert single.returncode == 0, single.stderr
    report = (null / "report" / "report.md").read_text()
    assert "seed agents none" in report and "not estimable" in report
    curve = analysis.contagion_curve(
        agora.load_run(null).of("prosim_day"), agora.load_run(null).of("prosim_change"), 6
    )
    assert curve["affected_share"].to_list() == [0.0, 0.0, 0.0]


def test_a_scenario_key_with_a_colon_is_refused(tmp_path):
    text = (REPO / "worlds" / "prosim" / "scenarios.toml").read_text()
    bad = tmp_path / "s.toml"
    bad.write_text(text.replace('key = "camera"', 'key = "cam:era"'))
    with pytest.raises(ConfigError, match="has a ':'"):
        load_scenarios(str(bad))


def test_the_no_policy_run_must_be_the_pair():
    from agora.worlds.prosim.report import unpaired

    def header(seed: int, ticks: int, agents: int, policy: bool) -> dict[str, Any]:
        policies = {"inequity": {"kind": "inequity", "from_tick": 1}} if policy else {}
        return {
            "config": {
                "run": {"seed": seed, "ticks": ticks},
                "world": {"kind": "prosim_network", "agents": agents},
                "policies": policies,
            }
        }

    treated = header(1, 20, 104, True)
    assert unpaired(treated, header(1, 20, 104, False)) is None
    assert "seed (1 here, 2 there)" in str(unpaired(treated, header(2, 20, 104, False)))
    assert "days" in str(unpaired(treated, header(1, 10, 104, False)))
    assert "world" in str(unpaired(treated, header(1, 20, 50, False)))
    assert "has an inequity policy" in str(unpaired(treated, header(1, 20, 104, True)))


# ---- Study 2: ProSim's people in FairMindSim's game --------------------------------------------


def test_the_orientation_follows_the_rank_of_prosociality():
    from agora.worlds.prosim.punishment import svo_by_rank

    rng = np.random.default_rng(3)
    scores = list(rng.normal(size=104))
    svo = svo_by_rank(scores)
    # FairMindSim's shares by largest remainders: 64 / 37 / 3 of 104, by hand.
    assert (svo.count("prosocial"), svo.count("individualistic"), svo.count("competitive")) == (
        64,
        37,
        3,
    )
    ranked = sorted(range(104), key=lambda a: -scores[a])
    assert {svo[a] for a in ranked[:64]} == {"prosocial"}
    assert {svo[a] for a in ranked[-3:]} == {"competitive"}
    assert svo_by_rank([0.0]) == ["prosocial"]
    assert svo_by_rank([1.0, 2.0]) == ["individualistic", "prosocial"]
    # Equal scores at the cut: the lower agent number first.
    assert svo_by_rank([1.0, 1.0]) == ["prosocial", "individualistic"]


def test_prosim_people_play_the_game_in_their_own_words():
    from agora.worlds.fairmind.items import JSI
    from agora.worlds.prosim.punishment import PunishmentConfig, PunishmentPlugin

    seeds = Seeds(1)
    parts = PunishmentPlugin().build(PunishmentConfig(agents=4), seeds)
    people = personas.generate(4, Seeds(1))
    # The profile is ProSim's rendering; the rules leave FairMindSim's questionnaires out.
    assert parts.prompts.persona_of(2) == personas.render(people[2])  # type: ignore[attr-defined]
    assert JSI.items[0] not in parts.prompts.rules()  # type: ignore[attr-defined]
    # The dispositions, by hand from the module's mapping.
    p = people[3]
    d = parts.world.cohort.disposition(3)  # type: ignore[attr-defined]
    mi = (p.scores["moral_identity"] - 3.0) / 0.5
    n = (p.scores["neuroticism"] - 2.96) / 0.67
    e = (p.scores["extraversion"] - 3.19) / 0.66
    o = (p.scores["openness"] - 3.57) / 0.59
    assert (d.justice, d.reactivity, d.low_mood, d.routine) == pytest.approx((mi, n, -e, -o))
    counts = parts.world.describe()["svo"]  # type: ignore[attr-defined]
    # 4 × 64/104 = 2.46, 4 × 37/104 = 1.42, 4 × 3/104 = 0.12: floors 2, 1, 0, the spare to 0.46.
    assert counts == {"prosocial": 3, "individualistic": 1, "competitive": 0}


def test_the_questionnaires_are_refused_for_prosim_people(tmp_path):
    result = run_cli(
        "run", str(PUNISHMENT), "--out", str(tmp_path / "r"), "--set", "world.item_texts=true"
    )
    one_line_exit_2(result, "world.item_texts")


def test_a_study_2_run_logs_prosim_people_and_fits(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        "run", str(PUNISHMENT), "--out", str(run), "--set", "world.agents=6", "--set", "run.ticks=20"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = agora.load_run(run)
    assert frames.header["world"] == "prosim_punishment"
    assert frames.of("prosim_persona").height == 6 and frames.of("fairmind_trial").height == 120
    fit = run_cli(
        "fit", str(run), "--out", str(tmp_path / "fit"), "--models", "BREM,Rational",
        "--restarts", "1", "--permutations", "0",
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert (tmp_path / "fit" / "fits.csv").read_text().count("\n") > 6

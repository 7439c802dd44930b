import itertools

import msgspec
import numpy as np
import pytest

from agora.engine.seeding import Seeds
from agora.worlds.schelling_city import PLUGIN
from agora.worlds.schelling_city.config import SchellingConfig
from agora.worlds.schelling_city.prompts import CityPrompts
from agora.worlds.schelling_city.utility import gini, optimal_allocation, personal_utility
from agora.worlds.schelling_city.world import Relocation, SchellingCity, act_kind


def city(**settings) -> SchellingCity:
    return PLUGIN.build(SchellingConfig(**settings), Seeds(3)).world


def test_personal_utility_peaks_at_half_and_ends_at_m():
    rho = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert personal_utility(rho, 0.5).tolist() == [0.0, 0.5, 1.0, 0.75, 0.5]
    assert personal_utility(1.0, 0.2).item() == pytest.approx(0.2)


def test_optimum_for_the_default_city_is_every_district_half_full():
    value, populations = optimal_allocation(225, 9, 50, 0.5)
    assert value == pytest.approx(225.0)
    assert populations == [25] * 9


@pytest.mark.parametrize(
    ("agents", "districts", "capacity", "m"), [(7, 3, 4, 0.5), (5, 3, 6, 0.0), (10, 4, 4, 0.8)]
)
def test_optimum_matches_brute_force(agents, districts, capacity, m):
    def welfare(n):
        return n * personal_utility(n / capacity, m).item()

    best = max(
        sum(welfare(n) for n in split)
        for split in itertools.product(range(capacity + 1), repeat=districts)
        if sum(split) == agents
    )
    value, populations = optimal_allocation(agents, districts, capacity, m)
    assert value == pytest.approx(best)
    assert sum(populations) == agents
    assert sum(welfare(n) for n in populations) == pytest.approx(best)


def test_gini_over_populations():
    assert gini([25] * 9) == 0.0
    assert gini([0, 0, 0, 0, 45, 45, 45, 45, 45]) == pytest.approx(4 / 9)
    assert gini([0, 0, 10]) == pytest.approx(2 / 3)
    assert gini([0, 0]) == 0.0


def test_each_options_deltas_equal_the_recomputed_change():
    world = city()
    for agent in range(0, 225, 17):
        view = world.observe(agent, 0)
        before_system = world.system_utility()
        for option in view.options:
            if option.full:
                continue
            trial = city()
            trial.home[agent] = option.district - 1
            trial.populations = np.bincount(trial.home, minlength=9)
            assert option.delta_system == pytest.approx(
                trial.system_utility() - before_system, abs=1e-6
            )
            mine = trial.utility_of(int(trial.populations[option.district - 1]))
            assert option.delta_personal == pytest.approx(mine - view.utility, abs=1e-6)


def test_annotation_puts_a_move_in_the_behaviour_matrix():
    world = city()
    view = world.observe(0, 0)
    option = view.options[0]
    info = world.annotate(0, view, Relocation(option.district))
    assert info["d_personal"] == option.delta_personal
    assert info["d_system"] == option.delta_system
    assert info["act"] == act_kind(option.delta_personal, option.delta_system)
    assert world.annotate(0, view, Relocation(None))["cell"] == "00"
    assert act_kind(-0.1, 0.5) == "altruistic"
    assert act_kind(0.1, -0.5) == "egoistic"
    assert act_kind(0.0, 0.0) == "other"


def test_a_crowded_destination_takes_a_seeded_subset_and_the_rest_are_blocked():
    world = city(agents=60, districts=3, cells_per_district=30, initial="crowded")
    assert world.populations.tolist() == [30, 30, 0]
    target_full = {agent: Relocation(2) for agent in range(60) if world.home[agent] == 0}
    outcomes = world.apply(0, target_full, np.random.default_rng(1), {})
    # District 2 was full on the state everyone saw: nobody gets in.
    assert all(o.blocked and not o.moved for o in outcomes.values())

    world = city(agents=60, districts=3, cells_per_district=30, initial="crowded")
    movers = {agent: Relocation(3) for agent in range(60)}
    outcomes = world.apply(0, movers, np.random.default_rng(1), {})
    assert world.populations.tolist()[2] == 30
    assert sum(o.moved for o in outcomes.values()) == 30
    assert sum(o.blocked for o in outcomes.values()) == 30
    again = city(agents=60, districts=3, cells_per_district=30, initial="crowded")
    again.apply(0, movers, np.random.default_rng(1), {})
    assert again.digest(0) == world.digest(0)
    metrics = world.metrics(0)
    assert metrics["moves"] == 30 and metrics["blocked"] == 30 and metrics["acted"] == 60
    assert sum(map(sum, metrics["matrix"])) == 60


def test_activation_fraction_asks_a_seeded_subset():
    world = city(activation=0.05)
    chosen = world.active_agents(0, np.random.default_rng(5))
    assert len(chosen) == 11 and len(set(chosen)) == 11
    assert chosen == world.active_agents(0, np.random.default_rng(5))
    assert len(city().active_agents(0, np.random.default_rng(5))) == 225


def test_metrics_and_digest_follow_the_state():
    world = city()
    metrics = world.metrics(0)
    assert metrics["poa"] == pytest.approx(world.system_utility() / 225)
    assert sum(metrics["populations"]) == 225
    before = world.digest(0)
    agent = 0
    target = next(o.district for o in world.observe(agent, 0).options if not o.full)
    world.apply(0, {agent: Relocation(target)}, np.random.default_rng(0), {})
    assert world.digest(1) != before


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"action": "stay"}, None),
        ({"action": "Stay put"}, None),
        ({"action": "move", "district": 4}, 4),
        ({"action": "move", "district": "4"}, 4),
        ({"action": "move", "district": "District 4"}, 4),
        ({"action": "move to district 4"}, 4),
        ({"move_to": 4}, 4),
        ({"action": "move", "district": 4.0}, 4),
    ],
)
def test_answers_decode_to_relocations(answer, expected):
    world = city()
    view = world.observe(0, 0)
    if expected == view.district:
        expected = None
    assert CityPrompts(world).decode_action(answer, view) == Relocation(expected)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({}, 'no "action"'),
        ({"action": "jump"}, "neither"),
        ({"action": "move"}, 'needs a "district"'),
        (
            {"action": "move", "district": 12},
            r"district 12 does not exist \(districts are 1 to 9\)",
        ),
        ({"action": "move", "district": 0}, "does not exist"),
        ({"action": "move", "district": "north"}, "not a district number"),
        ({"action": "move", "district": 2.5}, "not a district number"),
    ],
)
def test_unusable_answers_say_why(answer, reason):
    world = city()
    with pytest.raises(ValueError, match=reason):
        CityPrompts(world).decode_action(answer, world.observe(0, 0))


def test_the_prompt_shows_every_option_with_both_deltas():
    world = city()
    prompts = CityPrompts(world)
    view = world.observe(0, 0)
    text = prompts.private_view(0, view)
    for option in view.options:
        assert f"district {option.district}" in text
        assert f"{option.delta_system:+.3f}" in text
    assert "district 9" in prompts.shared_view(0)
    assert "225 residents" in prompts.rules()


def test_the_observation_is_a_plain_struct():
    view = city().observe(0, 0)
    decoded = msgspec.json.decode(msgspec.json.encode(view))
    assert len(decoded["options"]) == 8


def test_the_shape_based_optimum_equals_the_dynamic_programme_on_many_cities():
    """The O(Q·H) optimum (empty districts, one free district, the rest balanced) is exact."""
    from agora.worlds.schelling_city.utility import district_welfare, optimal_allocation_dp

    rng = np.random.default_rng(3)
    for _ in range(400):
        districts, capacity = int(rng.integers(2, 8)), int(rng.integers(1, 16))
        agents = int(rng.integers(0, districts * capacity + 1))
        m = float(rng.choice([0.0, 0.2, 0.5, 0.8, 1.0]))
        value, populations = optimal_allocation(agents, districts, capacity, m)
        expected, _ = optimal_allocation_dp(agents, districts, capacity, m)
        assert value == pytest.approx(expected, abs=1e-9), (agents, districts, capacity, m)
        assert sum(populations) == agents and len(populations) == districts
        assert max(populations) <= capacity
        welfare = district_welfare(capacity, m)
        assert sum(welfare[n] for n in populations) == pytest.approx(value, abs=1e-9)

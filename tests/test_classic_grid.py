import msgspec
import numpy as np
import pytest

from agora.worlds.schelling_city.classic_grid import (
    EMPTY,
    MAJORITY,
    MINORITY,
    ClassicGrid,
    ClassicGridConfig,
    main,
    neighbour_counts,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def small(grid, **settings) -> ClassicGrid:
    grid = np.array(grid)
    config = ClassicGridConfig(height=grid.shape[0], width=grid.shape[1], **settings)
    return ClassicGrid(config, rng(), grid)


# Two agents of each group in the corners of a 4×5 grid: on a torus they are each other's
# neighbours across the edges, on a bounded grid nobody has a neighbour but the empty cells.
CORNERS = [
    [MAJORITY, EMPTY, EMPTY, EMPTY, MINORITY],
    [EMPTY, EMPTY, EMPTY, EMPTY, EMPTY],
    [EMPTY, EMPTY, EMPTY, EMPTY, EMPTY],
    [MINORITY, EMPTY, EMPTY, EMPTY, MAJORITY],
]


def test_neighbour_counts_wrap_around_the_torus_by_hand():
    like, occupied = neighbour_counts(np.array(CORNERS, dtype=np.int8), torus=True)
    # (0,0) majority: left (0,4) minority, up (3,0) minority, up-left (3,4) majority.
    assert (like[0, 0], occupied[0, 0]) == (1, 3)
    # (0,4) minority: right (0,0) majority, up (3,4) majority, up-right (3,0) minority.
    assert (like[0, 4], occupied[0, 4]) == (1, 3)
    assert (like[3, 0], occupied[3, 0]) == (1, 3)
    assert (like[3, 4], occupied[3, 4]) == (1, 3)
    # Empty (1,0): above (0,0), up-left (0,4) across the edge; nothing below in row 2.
    assert (like[1, 0], occupied[1, 0]) == (0, 2)
    # Empty (2,2): the middle of the grid touches no corner.
    assert occupied[2, 2] == 0
    # Empty (0,2) sees no corner; (0,1) sees (0,0) beside it and (3,0) across the top edge.
    assert occupied[0, 2] == 0
    assert occupied[0, 1] == 2


def test_neighbour_counts_on_a_bounded_grid_stop_at_the_edges():
    like, occupied = neighbour_counts(np.array(CORNERS, dtype=np.int8), torus=False)
    for corner in [(0, 0), (0, 4), (3, 0), (3, 4)]:
        assert (like[corner], occupied[corner]) == (0, 0)
    assert occupied[1, 0] == 1
    assert occupied[0, 1] == 1


def test_on_a_3x3_torus_every_other_cell_is_a_neighbour():
    grid = rng(4).integers(0, 3, size=(3, 3)).astype(np.int8)
    like, occupied = neighbour_counts(grid, torus=True)
    agents = np.count_nonzero(grid)
    for cell in np.ndindex(3, 3):
        me = grid[cell]
        assert occupied[cell] == agents - (me != EMPTY)
        assert like[cell] == (np.count_nonzero(grid == me) - 1 if me != EMPTY else 0)


def test_homophily_is_a_share_of_occupied_neighbours_with_ties_happy():
    # 3×3 torus: everyone's neighbours are the 8 others.
    tie = small([[1, 1, 1], [1, 2, 2], [2, 2, 2]])  # majority sees 3 of 8 alike = 0.375
    assert tie.last.happy == 9
    short = small([[1, 1, 1], [2, 2, 2], [2, 2, 2]])  # majority sees 2 of 8
    assert short.happy_mask[0].tolist() == [False] * 3
    assert short.last.happy == 6
    # Shares count occupied neighbours only: 2 alike of 3 occupied is 0.67, happy at 0.6.
    sparse = small([[1, 1, 0], [1, 2, 0], [0, 0, 0]], homophily=0.6, torus=False)
    assert sparse.happy_mask[0, 0]
    assert not sparse.happy_mask[1, 1]  # the minority agent: 0 alike of 3


def test_an_agent_without_neighbours_is_unhappy_unless_homophily_is_zero():
    lonely = [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert small(lonely, torus=False).last.happy == 0
    assert small(lonely, torus=False, homophily=0.0).last.happy == 1


def test_a_step_conserves_both_groups_and_moves_only_the_unhappy_into_empty_cells():
    grid = ClassicGrid(ClassicGridConfig(width=40, height=30), rng(11))
    counts = grid.counts()
    for _ in range(5):
        before, happy = grid.grid.copy(), grid.happy_mask.copy()
        unhappy = int(np.count_nonzero((before != EMPTY) & ~happy))
        metrics = grid.step()
        after = grid.grid
        assert grid.counts() == counts
        # No cell occupied at the start of the step takes in an agent: its own stays or leaves.
        was = before != EMPTY
        assert np.all((after[was] == before[was]) | (after[was] == EMPTY))
        # Happy agents stay; every unhappy one left (there was room), into a cell that was empty.
        assert np.array_equal(after[happy], before[happy])
        left = was & (after == EMPTY)
        arrived = ~was & (after != EMPTY)
        assert metrics.moves == unhappy == np.count_nonzero(left) == np.count_nonzero(arrived)
        for group in (MAJORITY, MINORITY):
            assert np.count_nonzero(before[left] == group) == np.count_nonzero(
                after[arrived] == group
            )


def test_with_fewer_empty_cells_than_unhappy_agents_only_as_many_move():
    # One empty cell; nobody can be happy at homophily 1 in a mixed 3×3 torus.
    grid = small([[1, 2, 1], [2, 0, 2], [1, 2, 1]], homophily=1.0)
    assert grid.last.happy == 0
    metrics = grid.step()
    assert metrics.moves == 1
    assert np.count_nonzero(grid.grid == EMPTY) == 1
    assert grid.grid[1, 1] != EMPTY
    assert grid.counts() == (4, 4)


def test_default_city_goes_from_random_to_nearly_all_happy_within_50_steps():
    grid = ClassicGrid(ClassicGridConfig(), rng(2))
    start = grid.last
    assert 7800 < grid.agents < 8200
    assert 0.6 < start.happy_fraction < 0.9  # a random start: many minority agents unhappy
    history = grid.run(50)
    assert history[-1].happy_fraction > 0.99
    assert history[-1].segregation > start.segregation + 0.15
    # Moves dwindle as agents settle.
    assert history[0].moves > 10 * history[-1].moves


def test_run_stops_when_everyone_is_happy_and_steps_at_least_once():
    grid = small([[1, 1, 1], [1, 2, 2], [2, 2, 2]])
    history = grid.run(10)
    assert len(history) == 1
    assert history[0].moves == 0
    assert grid.all_happy


def test_same_seed_same_run_and_another_seed_another():
    config = ClassicGridConfig(width=30, height=20)
    one, two, other = (ClassicGrid(config, rng(s)) for s in (5, 5, 6))
    assert one.run(10) == two.run(10)
    assert np.array_equal(one.grid, two.grid)
    other.run(10)
    assert not np.array_equal(one.grid, other.grid)


def test_config_is_strict():
    with pytest.raises(msgspec.ValidationError, match="widht"):
        msgspec.convert({"widht": 10}, ClassicGridConfig)
    with pytest.raises(msgspec.ValidationError, match="density"):
        msgspec.convert({"density": 1.0}, ClassicGridConfig)
    with pytest.raises(ValueError, match="height × width"):
        ClassicGrid(ClassicGridConfig(width=3, height=3), rng(), np.zeros((4, 3)))


def test_the_mode_prints_each_step(capsys):
    assert main(["--steps", "3", "--seed", "1", "--width", "20", "--height", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step    0  agents ")
    assert lines[3].startswith("step    3  agents ")
    assert main(["--density", "1.5"]) == 2

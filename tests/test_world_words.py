"""Worlds own their words: the engine and the agent carry none of the Schelling city's, and a
world without the optional report capabilities still gets a run report."""

from __future__ import annotations

import re

from agora.agents.llm_agent import LLMAgent, LLMAgentConfig, Sampling
from agora.engine.world_reports import (
    DEFAULT_LAST_TICKS,
    Draws,
    HasCodebook,
    LabelsReport,
    RendersState,
    ReportsMetrics,
    SweepSections,
    last_ticks_label,
    picture_metrics,
    table_axes,
)
from agora.worlds.schelling_city import PLUGIN as CITY
from agora.worlds.schelling_city.prompts import CityPrompts
from agora.worlds.schelling_city.world import MoveOutcome
from tests.helpers import REPO, run_cli
from tests.independent_world import PLUGIN as COUNTER
from tests.independent_world import CounterPrompts

CITY_WORDS = re.compile(r"resident|district|poa|Δ system|altruis|egois", re.IGNORECASE)

# Lines the engine may keep although they hold a city word, each with why. Neither file is ours
# to edit in this change; both are prose, not behaviour.
ALLOWED = {
    # An error message pointing at the example sweep config by its file name.
    ("engine/sweep.py", "(see runs/schelling_altruism.toml)"),
    # A generic statistic's docstring naming the rare events it was chosen for.
    ("engine/analysis/stats.py", "which altruistic acts are"),
}


def test_the_engine_and_the_agent_carry_no_city_words():
    found = []
    for folder in ("engine", "agents"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not CITY_WORDS.search(line):
                    continue
                if any(relative == file and text in line for file, text in ALLOWED):
                    continue
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "city words outside the city:\n" + "\n".join(found)


def test_the_city_implements_every_report_capability():
    for capability in (Draws, ReportsMetrics, HasCodebook, SweepSections, LabelsReport):
        assert isinstance(CITY, capability), capability.__name__
    assert table_axes(CITY, "matrix") == ("sign of Δ system utility", "sign of Δ personal utility")
    assert picture_metrics(CITY) == ("poa", "gini")
    assert last_ticks_label(CITY) == "equilibrium"
    assert issubclass(CityPrompts, RendersState)


def test_a_plain_world_gets_the_engines_neutral_words():
    for capability in (Draws, ReportsMetrics, HasCodebook, SweepSections, LabelsReport):
        assert not isinstance(COUNTER, capability), capability.__name__
    assert not isinstance(CounterPrompts(), RendersState)
    assert table_axes(COUNTER, "matrix") == ("column", "row")
    assert picture_metrics(COUNTER) is None
    assert last_ticks_label(COUNTER) == DEFAULT_LAST_TICKS


def test_the_world_writes_the_whole_memory_line():
    city = CityPrompts.__new__(CityPrompts)  # describe_outcome reads nothing of the city
    outcome = MoveOutcome(
        wanted=2, moved=True, blocked=False, district=2, utility_before=0.5, utility_after=0.75
    )
    line = "round 3: you moved to district 2; your satisfaction went from 0.500 to 0.750."
    assert city.describe_outcome(2, outcome) == line
    agent = LLMAgent(0, LLMAgentConfig(), CounterPrompts(), [], "system", Sampling())
    agent.remember(4, 7)
    assert list(agent.memory) == ["round 5: your total is 7"]


def test_a_world_without_capabilities_gets_a_report_without_pictures(tmp_path):
    config = tmp_path / "counter.toml"
    config.write_text('[world]\nkind = "tests.independent_world:PLUGIN"\nagents = 3\n')
    out = tmp_path / "run"
    result = run_cli("run", str(config), "-q", "--ticks", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    text = (out / "report" / "report.md").read_text()
    assert "## Decisions" in text and "Run status: completed" in text
    assert "## Final state" not in text
    assert not (out / "report" / "final_state.png").exists()
    frames = run_cli("replay", str(out), "--frames", str(tmp_path / "frames"))
    assert frames.returncode != 0
    assert "cannot draw itself" in frames.stderr
    shown = run_cli("replay", str(out), "--tick", "1")
    assert shown.returncode == 0, shown.stderr

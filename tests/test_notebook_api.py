"""The notebook API: ``agora.run`` → ``run.frames()`` → ``agora.replay``, offline."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import tomllib
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import agora
from agora.engine.frames import load_run
from agora.engine.scheduler import state_digest
from tests.helpers import CONFIG

SMALL = {"world.agents": 20, "run.ticks": 3}


def _city() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text(encoding="utf-8"))


def _decisions(run: agora.Run) -> list[tuple[int, int, Any, Any]]:
    frame = run.frames().decisions.sort("tick", "agent")
    return list(
        zip(
            frame["tick"].to_list(),
            frame["agent"].to_list(),
            frame["action"].to_list(),
            frame["raw"].to_list(),
            strict=True,
        )
    )


def test_runs_a_dict_config_to_its_end(tmp_path: Path) -> None:
    run = agora.run(_city(), overrides=SMALL, out=tmp_path / "dict")
    assert isinstance(run, agora.Run)
    assert run.path == tmp_path / "dict"
    assert (run.path / "log.jsonl").is_file()
    assert run.summary.status == "completed"
    assert run.summary.ticks == 3
    assert run.summary.decisions == 60
    frames = run.frames()
    assert frames.ticks["tick"].to_list() == [0, 1, 2]
    assert frames.decisions.height == 60
    assert frames.header["config"]["world"]["agents"] == 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.path = tmp_path  # type: ignore[misc]


def test_runs_a_path_with_keyword_overrides(tmp_path: Path) -> None:
    run = agora.run(
        CONFIG,
        overrides={"world.agents": 20, "policies.board.enabled": False},
        ticks=2,
        seed=3,
        out=str(tmp_path / "path"),
    )
    assert run.summary.status == "completed"
    assert run.summary.ticks == 2
    header = run.frames().header
    assert header["seed"] == 3
    assert header["config"]["policies"]["board"]["enabled"] is False
    assert run.frames().records == {}, "a disabled board declares no record kinds"
    assert header["records"] == {}


def test_the_dict_is_left_as_it_was(tmp_path: Path) -> None:
    config = _city()
    before = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    agora.run(config, overrides=SMALL, out=tmp_path / "r")
    assert config == before


def test_the_same_seed_gives_the_same_decisions(tmp_path: Path) -> None:
    first = agora.run(_city(), overrides=SMALL, seed=11, out=tmp_path / "a")
    again = agora.run(CONFIG, overrides=SMALL, seed=11, out=tmp_path / "b")
    assert _decisions(first) == _decisions(again)
    assert len(_decisions(first)) == 60
    digests = [r.frames().ticks["digest"].to_list() for r in (first, again)]
    assert digests[0] == digests[1]


def test_replay_rebuilds_the_state_of_a_tick(tmp_path: Path) -> None:
    run = agora.run(_city(), overrides=SMALL, out=tmp_path / "r")
    logged = run.frames().ticks.filter(pl.col("tick") == 1)["digest"].item()
    replayer = agora.replay(run.path, tick=1)
    assert isinstance(replayer, agora.Replayer)
    assert replayer.tick == 1
    assert state_digest(replayer.world, replayer.policies, 1) == logged
    assert len(replayer.agents) == 20
    assert [p.name for p in replayer.policies] == ["board"]
    # Through the run, and to the last tick by default.
    assert run.replay(1).tick == 1
    assert agora.replay(run.path).tick == 2
    last = run.frames().ticks.filter(pl.col("tick") == 2)["digest"].item()
    assert state_digest(run.replay().world, run.replay().policies, 2) == last


@pytest.mark.parametrize("tick", [3, -1, 100])
def test_a_tick_out_of_range_names_the_range(tmp_path: Path, tick: int) -> None:
    run = agora.run(_city(), overrides=SMALL, out=tmp_path / "r")
    with pytest.raises(agora.ReplayError, match=r"holds ticks 0 to 2"):
        agora.replay(run.path, tick=tick)


def test_replay_of_no_run_is_a_replay_error(tmp_path: Path) -> None:
    with pytest.raises(agora.ReplayError, match="no such log"):
        agora.replay(tmp_path)


@pytest.mark.parametrize(
    ("config", "overrides", "field"),
    [
        ("dict", {"world.agentz": 20}, "world.agentz"),
        ("path", {"world.agentz": 20}, "world.agentz"),
        ("dict", {"run.tickz": 3}, "run.tickz"),
        ("path", {"inference.backend": "nope"}, "inference.backend"),
        ("dict", {"policies.board.top_kk": 3}, "policies.board.top_kk"),
    ],
)
def test_a_bad_field_is_a_config_error_naming_it(
    tmp_path: Path, config: str, overrides: dict[str, Any], field: str
) -> None:
    given = _city() if config == "dict" else CONFIG
    with pytest.raises(agora.ConfigError, match=rf"^{field}: ") as caught:
        agora.run(given, overrides={**SMALL, **overrides}, out=tmp_path / "r")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "r").exists()


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(agora.ConfigError, match="no such config file"):
        agora.run(tmp_path / "nope.toml")


def test_a_run_is_never_overwritten(tmp_path: Path) -> None:
    agora.run(_city(), overrides=SMALL, out=tmp_path / "r")
    for config in (_city(), CONFIG):
        with pytest.raises(agora.ConfigError, match="already holds a run"):
            agora.run(config, overrides=SMALL, out=tmp_path / "r")


def test_without_out_a_dict_run_goes_under_runs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = agora.run(_city(), overrides=SMALL)
    again = agora.run(_city(), overrides=SMALL)
    assert first.path.parent == Path("runs/out/schelling_city")
    assert first.path.name.startswith("schelling_city-seed7-")
    assert again.path != first.path
    assert first.summary.run_id == first.path.name


async def test_arun_on_the_running_loop(tmp_path: Path) -> None:
    run = await agora.arun(_city(), overrides=SMALL, out=tmp_path / "a")
    assert run.summary.status == "completed"
    assert run.frames().decisions.height == 60


async def test_run_from_inside_a_running_loop(tmp_path: Path) -> None:
    # As in a notebook cell: a loop runs in this thread, and agora.run still runs to its end.
    loop = asyncio.get_running_loop()
    ticking = asyncio.create_task(asyncio.sleep(0))
    run = agora.run(_city(), overrides=SMALL, out=tmp_path / "r")
    assert run.summary.status == "completed"
    assert asyncio.get_running_loop() is loop
    await ticking
    same = await agora.arun(_city(), overrides=SMALL, out=tmp_path / "a")
    assert _decisions(run) == _decisions(same)


async def test_config_errors_inside_a_running_loop_are_raised_in_the_caller(
    tmp_path: Path,
) -> None:
    threads = threading.active_count()
    with pytest.raises(agora.ConfigError, match=r"^world\.agentz: "):
        agora.run(_city(), overrides={"world.agentz": 1}, out=tmp_path / "r")
    assert threading.active_count() == threads


def test_a_world_author_finds_the_names_in_one_place() -> None:
    for name in (
        "AnswerField",
        "World",
        "WorldPrompts",
        "WorldParts",
        "OfflineBehaviour",
        "Policy",
        "Seeds",
        "RunSummary",
        "ConfigError",
        "ReplayError",
    ):
        assert name in agora.__all__
        assert getattr(agora, name) is not None
    assert agora.__all__ == sorted(agora.__all__)
    assert agora.load_run is load_run

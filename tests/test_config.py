from datetime import UTC, datetime
from pathlib import Path

import pytest

from agora.engine.config import ConfigError, apply_overrides, parse_assignment
from agora.engine.runner import OutputExistsError, plan_run
from tests.helpers import CONFIG

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def plan(tmp_path: Path, text: str | None = None, **overrides):
    path = CONFIG
    if text is not None:
        path = tmp_path / "c.toml"
        path.write_text(text)
    return plan_run(path, overrides, now=NOW, out_root=tmp_path / "out")


def test_the_shipped_config_plans(tmp_path):
    result = plan(tmp_path)
    assert result.world_config.agents == 225
    assert [p.name for p in result.policies] == ["board"]
    assert (
        result.out_dir
        == tmp_path / "out" / "schelling_city" / "schelling_city-seed7-20260102-030405"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"run.ticks": 0}, r"^run\.ticks: expected `int` >= 1$"),
        ({"run.ticks": "many"}, r"^run\.ticks: expected `int`, got `str`$"),
        (
            {"run.tikcs": 3},
            r"^run\.tikcs: unknown field \(allowed: name, seed, ticks, out, scheduler, max_error_rate\)$",
        ),
        (
            {"inference.backend": "gpt"},
            r"^inference\.backend: invalid enum value 'gpt'; allowed: litellm, local, offline, openai-http "
            r"\(or a plug-in's module:attr\)$",
        ),
        ({"world.m": 1.5}, r"^world\.m: expected `float` <= 1\.0$"),
        (
            {"world.offline.altruist_fraction": -0.1},
            r"^world\.offline\.altruist_fraction: expected `float` >= 0\.0$",
        ),
        ({"world.agents": 500}, r"^world: agents \(500\) exceed the city's room"),
        (
            {"world.kind": "atlantis"},
            r"^world\.kind: unknown world 'atlantis'; available: .*schelling_city",
        ),
        ({"agents.kind": "robot"}, r"^agents\.kind: unknown agents 'robot'; available: llm"),
        ({"policies.board.top_k": 0}, r"^policies\.board\.top_k: expected `int` >= 1$"),
        ({"policies.board.enabled": "yes"}, r"^policies\.board\.enabled: expected true or false$"),
        ({"policies.board.kind": "pillory"}, r"^policies\.board\.kind: unknown policy 'pillory'"),
    ],
)
def test_a_mistake_names_the_field_and_what_is_allowed(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        plan_run(CONFIG, overrides, now=NOW, out_root=tmp_path)


def test_a_policy_that_is_not_a_table_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"^policies\.board: expected a table"):
        plan_run(CONFIG, {"policies.board": 3}, now=NOW, out_root=tmp_path)


def test_something_that_is_not_a_plugin_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^world\.kind: 'os:path' is not an agora plugin"):
        plan_run(CONFIG, {"world.kind": "os:path"}, now=NOW, out_root=tmp_path)
    with pytest.raises(ConfigError, match=r"^world\.kind: cannot load 'nowhere:thing'"):
        plan_run(CONFIG, {"world.kind": "nowhere:thing"}, now=NOW, out_root=tmp_path)


def test_a_config_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe[run]")
    with pytest.raises(ConfigError, match="not a text file"):
        plan_run(path, {}, now=NOW)


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="is a file, not a directory"):
        plan_run(CONFIG, {"run.out": str(tmp_path / "file")}, now=NOW)


def test_a_missing_world_kind_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"^world\.kind: missing"):
        plan(tmp_path, "[world]\nagents = 10\n")


def test_a_missing_world_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"^world: missing; this field is required$"):
        plan(tmp_path, "[run]\nticks = 3\n")


def test_not_toml_and_no_file_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        plan(tmp_path, "[run\n")
    with pytest.raises(ConfigError, match="no such config file"):
        plan_run(tmp_path / "nope.toml", {}, now=NOW)


def test_a_disabled_policy_is_checked_but_not_built(tmp_path):
    result = plan_run(CONFIG, {"policies.board.enabled": False}, now=NOW, out_root=tmp_path)
    assert result.policies == ()
    assert result.resolved["policies"]["board"]["enabled"] is False


def test_an_output_directory_holding_a_run_is_refused(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "log.jsonl").write_text("{}\n")
    with pytest.raises(OutputExistsError, match="already holds a run"):
        plan_run(CONFIG, {"run.out": str(out)}, now=NOW)


def test_default_output_directories_never_collide(tmp_path):
    first = plan(tmp_path)
    first.out_dir.mkdir(parents=True)
    second = plan(tmp_path)
    assert second.out_dir != first.out_dir
    assert second.out_dir.name.endswith("-2")


def test_assignments_read_values_as_toml():
    assert parse_assignment("world.m=0.4") == ("world.m", 0.4)
    assert parse_assignment("policies.board.enabled=false") == ("policies.board.enabled", False)
    assert parse_assignment("run.name=my run") == ("run.name", "my run")
    with pytest.raises(ConfigError, match=r"expected FIELD\.PATH=VALUE"):
        parse_assignment("nonsense")


def test_overrides_do_not_touch_the_original():
    raw = {"run": {"ticks": 3}}
    assert apply_overrides(raw, {"run.ticks": 5, "world.kind": "x"}) == {
        "run": {"ticks": 5},
        "world": {"kind": "x"},
    }
    assert raw == {"run": {"ticks": 3}}

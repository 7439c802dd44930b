"""Sweeps: models × conditions × seeds, each a normal run; reruns skip and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agora.engine.config import ConfigError
from agora.engine.run_state import state_of
from agora.engine.sweep import plan_sweep
from tests.helpers import REPO, of_kind, records, run_cli, without_timing

SWEEP = REPO / "runs" / "schelling_altruism.toml"

SMALL = """
[run]
name = "small"
ticks = 5

[world]
kind = "schelling_city"
agents = 45
districts = 9
cells_per_district = 10

[agents]
kind = "llm"

[policies.board]
kind = "message_board"

[sweep]
seeds = [1, 2]
parallel = 2

[[sweep.models]]
name = "egoists"
set = { "world.offline.altruist_fraction" = 0.0 }

[[sweep.models]]
name = "altruists"
set = { "world.offline.altruist_fraction" = 1.0, "world.m" = 0.4 }

[[sweep.conditions]]
name = "board"
set = { "policies.board.enabled" = true }

[[sweep.conditions]]
name = "no-board"
set = { "policies.board.enabled" = false }
"""


def small_sweep(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_every_combination_gets_its_settings_seed_and_directory(tmp_path):
    plan = plan_sweep(small_sweep(tmp_path), {"run.ticks": 3}, out=str(tmp_path / "out"))
    assert [r.label for r in plan.runs] == [
        f"{m}/{c}/seed{s}"
        for m in ("egoists", "altruists")
        for c in ("board", "no-board")
        for s in (1, 2)
    ]
    for run in plan.runs:
        resolved = run.plan.resolved
        assert resolved["run"]["seed"] == run.seed
        assert resolved["run"]["ticks"] == 3, "the command line's fields reach every run"
        expected_fraction = 0.0 if run.model == "egoists" else 1.0
        assert resolved["world"]["offline"]["altruist_fraction"] == expected_fraction
        assert resolved["world"]["m"] == (0.5 if run.model == "egoists" else 0.4)
        assert resolved["policies"]["board"]["enabled"] is (run.condition == "board")
        assert [p.name for p in run.plan.policies] == (
            ["board"] if run.condition == "board" else []
        )
        assert run.plan.out_dir == tmp_path / "out" / run.model / run.condition / f"seed{run.seed}"
    assert len({r.plan.run_id for r in plan.runs}) == 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('"world.m" = 0.4', '"world.m" = 4.0'),
            "sweep model 'altruists', condition 'board': world.m",
        ),
        (
            ('name = "board"', 'name = "bo ard"'),
            "sweep.conditions[0].name: 'bo ard' is used in paths",
        ),
        (("seeds = [1, 2]", "seeds = [1, 1]"), "sweep.seeds: a seed appears twice"),
        (("parallel = 2", "parallel = 0"), "sweep.parallel"),
        (
            ('name = "altruists"', 'name = "egoists"'),
            "sweep.models[1].name: 'egoists' appears twice",
        ),
    ],
)
def test_a_bad_combination_is_named_before_anything_runs(tmp_path, change, message):
    old, new = change
    assert old in SMALL
    path = small_sweep(tmp_path, SMALL.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        plan_sweep(path, {}, out=str(tmp_path / "out"))
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_run_config_without_a_sweep_table_is_refused_with_a_hint(tmp_path):
    with pytest.raises(ConfigError, match=r"no \[sweep\] table"):
        plan_sweep(REPO / "runs" / "schelling_city.toml", {})


def test_the_experiment_config_is_valid_and_names_both_offline_archetype_mixes():
    plan = plan_sweep(SWEEP, {})
    models = {r.model for r in plan.runs}
    assert {"adaptive-egoists", "altruistic-optimizers"} <= models
    assert len(plan.runs) == len(models) * 4 * 3


@pytest.mark.slow
def test_sweep_runs_everything_then_skips_finished_runs_and_resumes_a_broken_one(tmp_path):
    out = tmp_path / "out"
    config = small_sweep(tmp_path)
    first = run_cli("sweep", str(config), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "8 of 8 runs done" in first.stdout
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["completed"] * 8
    for run in manifest["runs"]:
        log = records(out / run["dir"] / "log.jsonl")
        assert len(of_kind(log, "decision")) == 45 * 5
        assert log[-1]["status"] == "completed"
        assert bool(of_kind(log, "post")) is (run["condition"] == "board")

    # Break one run as a crash would: the log cut inside tick 3, no summary.
    broken = out / "egoists" / "board" / "seed2"
    log_path = broken / "log.jsonl"
    unbroken = [without_timing(r) for r in records(log_path) if r["kind"] == "decision"]
    lines = log_path.read_bytes().splitlines(keepends=True)
    ticks_seen, cut = 0, 0
    for index, line in enumerate(lines):
        if line.startswith(b'{"kind":"tick"'):
            ticks_seen += 1
            if ticks_seen == 3:
                cut = index + 1 + 20  # three closed ticks and 20 decisions of the fourth
                break
    log_path.write_bytes(b"".join(lines[:cut]) + lines[cut][:30])
    (broken / "summary.json").unlink()
    assert state_of(broken).state == "unfinished"
    untouched = out / "altruists" / "no-board" / "seed1" / "log.jsonl"
    before = untouched.read_bytes()

    second = run_cli("sweep", str(config), "--out", str(out))
    assert second.returncode == 0, second.stderr
    statuses = {
        (r["model"], r["condition"], r["seed"]): r["status"]
        for r in json.loads((out / "sweep.json").read_text())["runs"]
    }
    assert statuses.pop(("egoists", "board", 2)) == "resumed"
    assert set(statuses.values()) == {"skipped"}
    assert untouched.read_bytes() == before, "a finished run is never touched"
    resumed = records(log_path)
    decisions = [without_timing(r) for r in resumed if r["kind"] == "decision"]
    key = lambda d: (d["tick"], d["agent"])
    assert sorted(decisions, key=key) == sorted(unbroken, key=key), "no decision lost or doubled"
    assert resumed[-1]["status"] == "completed"

    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    text = (out / "report" / "report.md").read_text()
    assert "# Sweep small" in text and "| egoists | board | offline / offline | 2 | 450 |" in text
    assert "## Equilibrium" in text and "## `matrix` summed over ticks and seeds" in text
    for figure in ("poa_over_ticks.png", "gini_over_ticks.png", "matrix_matrices.png"):
        assert (out / "report" / figure).stat().st_size > 1000


def test_the_cli_names_a_bad_sweep_field_in_one_line_with_exit_2(tmp_path):
    path = small_sweep(tmp_path, SMALL.replace("seeds = [1, 2]", 'seeds = "1,2"'))
    result = run_cli("sweep", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "sweep.seeds" in result.stderr and "Traceback" not in result.stderr


def test_dry_run_lists_the_runs_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", str(small_sweep(tmp_path)), "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": new -> ") == 8
    assert not out.exists()


@pytest.mark.slow
def test_a_rerun_with_another_config_is_refused_and_names_the_field(tmp_path):
    out = tmp_path / "out"
    config = small_sweep(tmp_path)
    assert run_cli("sweep", str(config), "--out", str(out), "-q").returncode == 0
    again = run_cli("sweep", str(config), "--out", str(out), "--ticks", "7")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    assert "run.ticks: 5 then, 7 now" in again.stderr and "another --out" in again.stderr


@pytest.mark.slow
def test_a_budget_stopped_run_is_reported_not_resumed_and_left_out_of_the_report(tmp_path):
    out = tmp_path / "out"
    config = small_sweep(tmp_path)
    first = run_cli(
        "sweep", str(config), "--out", str(out), "-q", "--set", "inference.budget_tokens=20000"
    )
    assert first.returncode == 1, first.stderr
    assert "stopped: token budget reached" in first.stderr
    log = out / "egoists" / "board" / "seed1" / "log.jsonl"
    before = log.read_bytes()
    second = run_cli(
        "sweep", str(config), "--out", str(out), "-q", "--set", "inference.budget_tokens=20000"
    )
    assert second.returncode == 1
    assert "agora resume" in second.stderr, "it says how to go on"
    assert log.read_bytes() == before, "no tick past the budget on a rerun"
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    text = (out / "report" / "report.md").read_text()
    assert "Left out of every figure and statistic" in text
    assert "egoists/board/seed1: stopped" in text


@pytest.mark.slow
def test_failed_decisions_mark_the_run_and_the_sweep_exits_1(tmp_path):
    out = tmp_path / "out"
    config = small_sweep(tmp_path, SMALL.replace("seeds = [1, 2]", "seeds = [1]"))
    result = run_cli(
        "sweep",
        str(config),
        "--out",
        str(out),
        "-q",
        "--ticks",
        "1",
        "--backend",
        "openai-http",
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model",
        "nobody",
        "--set",
        "inference.max_attempts=1",
        "--set",
        "inference.cache=false",
    )
    assert result.returncode == 1, result.stderr
    manifest = json.loads((out / "sweep.json").read_text())
    # Every decision failed: over run.max_error_rate, so each run failed, with the reason.
    assert {r["status"] for r in manifest["runs"]} == {"failed"}
    assert all("45 of 45 decisions ended in an error" in r["detail"] for r in manifest["runs"])
    assert all("connection failed" in r["detail"] for r in manifest["runs"])


def test_one_runs_crash_does_not_take_the_sweep_down(tmp_path, monkeypatch):
    import asyncio

    import agora.engine.sweep as sweep_module

    plan = plan_sweep(small_sweep(tmp_path), {"run.ticks": 2}, out=str(tmp_path / "out"))
    real = sweep_module.execute

    async def flaky(run_plan, **kwargs):
        if run_plan.run_id.endswith("egoists-board-seed1"):
            raise RuntimeError("a bug in one world")
        return await real(run_plan, **kwargs)

    monkeypatch.setattr(sweep_module, "execute", flaky)
    manifest = asyncio.run(sweep_module.run_sweep(plan))
    statuses = {(r.model, r.condition, r.seed): (r.status, r.detail) for r in manifest.runs}
    assert statuses.pop(("egoists", "board", 1)) == ("failed", "RuntimeError: a bug in one world")
    assert {s for s, _ in statuses.values()} == {"completed"}
    saved = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [r["status"] for r in saved["runs"]].count("completed") == 7


@pytest.mark.slow
def test_a_moved_sweep_reports_its_own_runs(tmp_path):
    out = tmp_path / "out"
    assert run_cli("sweep", str(small_sweep(tmp_path)), "--out", str(out), "-q").returncode == 0
    moved = tmp_path / "moved"
    out.rename(moved)
    report = run_cli("report", str(moved))
    assert report.returncode == 0, report.stderr
    assert "8 of 8 runs completed and are analysed" in (moved / "report" / "report.md").read_text()


def test_a_bad_set_on_a_sweep_is_one_line_and_exit_2(tmp_path):
    result = run_cli("sweep", str(small_sweep(tmp_path)), "--set", "nonsense")
    assert result.returncode == 2
    assert "--set 'nonsense'" in result.stderr and "Traceback" not in result.stderr

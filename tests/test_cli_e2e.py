"""The CLI as a user runs it: ``agora run runs/schelling_city.toml ...`` in a subprocess."""

from __future__ import annotations

import json

import pytest

from tests.helpers import CONFIG, of_kind, records, run_cli, without_timing

pytestmark = pytest.mark.slow


def test_225_agents_for_5_ticks_log_every_decision_with_its_reasoning(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(CONFIG), "--ticks", "5", "--out", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert f"log:     {out / 'log.jsonl'}" in result.stdout
    assert f"summary: {out / 'summary.json'}" in result.stdout

    log = records(out / "log.jsonl")
    header = log[0]
    assert (
        header["kind"] == "run" and header["backend"] == "offline" and header["model"] == "offline"
    )
    assert header["seed"] == 3 and header["config"]["world"]["agents"] == 225
    decisions = of_kind(log, "decision")
    assert len(decisions) == 1125
    assert {(d["tick"], d["agent"]) for d in decisions} == {
        (t, a) for t in range(5) for a in range(225)
    }
    assert all(d["valid"] and d["reasoning"].strip() and d["raw"] for d in decisions)
    assert all(d["info"]["cell"] in {f"{p}{s}" for p in "-0+" for s in "-0+"} for d in decisions)
    ticks = of_kind(log, "tick")
    assert [t["tick"] for t in ticks] == [0, 1, 2, 3, 4]
    for tick in ticks:
        metrics = tick["metrics"]
        assert 0 < metrics["poa"] <= 1 and 0 <= metrics["gini"] < 1
        assert sum(metrics["populations"]) == 225
        assert sum(map(sum, metrics["matrix"])) == 225
        board = tick["policies"]["board"]
        assert board["size"] > 0 and board["new_posts"] > 0
    assert of_kind(log, "post"), "the board is on: some agents post"
    assert (
        log[-1]["kind"] == "end"
        and log[-1]["status"] == "completed"
        and log[-1]["decisions"] == 1125
    )

    summary = json.loads((out / "summary.json").read_text())
    assert summary["decisions"] == 1125 and summary["ticks"] == 5
    assert summary["final_metrics"]["poa"] == ticks[-1]["metrics"]["poa"]


def test_the_same_seed_gives_the_same_log_and_another_seed_does_not(tmp_path):
    logs = []
    for name, seed in [("a", "11"), ("b", "11"), ("c", "12")]:
        out = tmp_path / name
        result = run_cli(
            "run", str(CONFIG), "-q", "--ticks", "4", "--seed", seed, "--out", str(out)
        )
        assert result.returncode == 0, result.stderr
        logs.append([without_timing(r) for r in records(out / "log.jsonl")])
    for record in logs[0] + logs[1]:
        if record["kind"] == "run":
            record.pop("run_id")
            record["config"]["run"].pop("out")
    assert logs[0] == logs[1]
    assert of_kind(logs[0], "tick")[-1]["digest"] != of_kind(logs[2], "tick")[-1]["digest"]


@pytest.mark.parametrize(("altruists", "expect_optimum"), [(0.0, False), (1.0, True)])
def test_rule_egoists_settle_below_the_optimum_and_altruists_reach_it(
    tmp_path, altruists, expect_optimum
):
    """Grauwin et al. / Jensen et al.: selfish agents end in crowded districts, altruists at ρ = ½.

    A small activation fraction approximates the original one-agent-at-a-time dynamics."""
    out = tmp_path / "run"
    result = run_cli(
        "run",
        str(CONFIG),
        "-q",
        "--ticks",
        "400",
        "--out",
        str(out),
        "--set",
        "world.activation=0.05",
        "--set",
        f"world.offline.altruist_fraction={altruists}",
        "--set",
        "policies.board.enabled=false",
    )
    assert result.returncode == 0, result.stderr
    final = of_kind(records(out / "log.jsonl"), "tick")[-1]["metrics"]
    if expect_optimum:
        assert final["poa"] == 1.0 and final["gini"] == 0.0
        assert final["populations"] == [25] * 9
    else:
        assert final["poa"] < 0.9 and final["gini"] > 0.2


def test_invalid_offline_answers_are_re_asked_and_recorded(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run",
        str(CONFIG),
        "-q",
        "--ticks",
        "3",
        "--out",
        str(out),
        "--set",
        "inference.offline.invalid_rate=0.3",
        "--set",
        "inference.max_reasks=1",
    )
    assert result.returncode == 0, result.stderr
    decisions = of_kind(records(out / "log.jsonl"), "decision")
    assert len(decisions) == 675
    reasked = [d for d in decisions if d["invalid_attempts"]]
    failed = [d for d in decisions if not d["valid"]]
    assert reasked and failed
    assert all(d["invalid_reason"] and d["raw"] and d["action"] is None for d in failed)
    assert all(d["requests"] == 2 for d in failed)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["invalid"] == len(failed)
    assert summary["requests"] == sum(d["requests"] for d in decisions)


def test_a_bad_config_gives_one_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[world]\nkind = "schelling_city"\nm = "high"\n')
    result = run_cli("run", str(bad), "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr == "agora: config error: world.m: expected `float`, got `str`\n"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()

    result = run_cli("run", str(CONFIG), "--ticks", "-1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "run.ticks: expected `int` >= 1" in result.stderr


def test_a_finished_run_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    assert run_cli("run", str(CONFIG), "-q", "--ticks", "1", "--out", str(out)).returncode == 0
    before = (out / "log.jsonl").read_bytes()
    result = run_cli("run", str(CONFIG), "-q", "--ticks", "1", "--out", str(out))
    assert result.returncode == 2
    assert "already holds a run" in result.stderr
    assert (out / "log.jsonl").read_bytes() == before


def test_check_validates_without_running(tmp_path):
    result = run_cli("check", str(CONFIG), "--out", str(tmp_path / "x"))
    assert result.returncode == 0 and "is valid" in result.stdout
    assert not (tmp_path / "x").exists()


def test_the_default_output_goes_under_runs_out(tmp_path):
    result = run_cli("run", str(CONFIG), "-q", "--ticks", "1", "--agents", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    logs = list((tmp_path / "runs" / "out" / "schelling_city").glob("*/log.jsonl"))
    assert len(logs) == 1
    assert len(of_kind(records(logs[0]), "decision")) == 20


def test_sigterm_stops_the_run_cleanly_with_the_log_kept(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import REPO

    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agora.engine.cli",
            "run",
            str(CONFIG),
            "--ticks",
            "100000",
            "--out",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = out / "log.jsonl"
        if log.exists() and log.read_bytes().count(b'"kind":"tick"') >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; the log so far is in" in stderr
    log = records(out / "log.jsonl")
    end = log[-1]
    assert end["kind"] == "end" and end["status"] == "stopped"
    ticks = of_kind(log, "tick")
    assert end["ticks"] == len(ticks) >= 2
    assert len({(d["tick"], d["agent"]) for d in of_kind(log, "decision")}) == len(
        of_kind(log, "decision")
    )


def test_a_budget_stops_the_run_cleanly_at_a_tick_end(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run",
        str(CONFIG),
        "-q",
        "--ticks",
        "20",
        "--out",
        str(out),
        "--set",
        "inference.usd_per_mtok_in=2.0",
        "--set",
        "inference.usd_per_mtok_out=8.0",
        "--set",
        "inference.budget_usd=0.5",
    )
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout and "reason:  cost budget reached: $" in result.stdout
    log = records(out / "log.jsonl")
    decisions = of_kind(log, "decision")
    ticks = of_kind(log, "tick")
    assert 0 < len(ticks) < 20
    assert len(decisions) == 225 * len(ticks), "the tick that crossed the budget is finished"
    for decision in decisions:
        expected = (decision["tokens_in"] * 2.0 + decision["tokens_out"] * 8.0) / 1e6
        assert decision["cost_usd"] == pytest.approx(expected)
    total = sum(d["cost_usd"] for d in decisions)
    end = log[-1]
    assert end["status"] == "stopped" and end["cost_usd"] == pytest.approx(total)
    assert (
        total
        >= 0.5
        > total - sum(d["cost_usd"] for d in decisions if d["tick"] == ticks[-1]["tick"])
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["reason"].startswith("cost budget reached")


def test_a_token_budget_counts_billed_tokens(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run",
        str(CONFIG),
        "-q",
        "--ticks",
        "20",
        "--out",
        str(out),
        "--set",
        "inference.budget_tokens=400000",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["billed_tokens"] >= 400000
    assert summary["reason"] == f"token budget reached: {summary['billed_tokens']} of 400000 tokens"
    decisions = of_kind(records(out / "log.jsonl"), "decision")
    assert summary["billed_tokens"] == sum(d["tokens_in"] + d["tokens_out"] for d in decisions)

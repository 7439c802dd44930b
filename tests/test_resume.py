"""Kill a running CLI with SIGKILL at several points, resume it, and compare with an unbroken run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import CONFIG, REPO, of_kind, records, run_cli

pytestmark = pytest.mark.slow

# Slow enough (simulated latency, few in flight) that a kill lands mid-run.
RUN = [
    "--ticks",
    "10",
    "--concurrency",
    "16",
    "--set",
    "inference.offline.latency_ms=15",
    "--set",
    "inference.offline.invalid_rate=0.1",
]


def digests(log):
    return [r["digest"] for r in of_kind(records(log), "tick")]


def decision_set(log):
    decisions = of_kind(records(log), "decision")
    keys = [(d["tick"], d["agent"]) for d in decisions]
    assert len(keys) == len(set(keys)), "no decision is logged twice"
    return sorted((d["tick"], d["agent"], d["raw"], d["valid"]) for d in decisions)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    out = tmp_path_factory.mktemp("unbroken") / "run"
    result = run_cli("run", str(CONFIG), "-q", "--out", str(out), *RUN)
    assert result.returncode == 0, result.stderr
    return out / "log.jsonl"


def kill_after_ticks(out, ticks: int, extra_s: float) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agora.engine.cli",
            "run",
            str(CONFIG),
            "-q",
            "--out",
            str(out),
            *RUN,
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    log = out / "log.jsonl"
    while time.monotonic() < deadline:
        if log.exists() and log.read_bytes().count(b'"kind":"tick"') >= ticks:
            break
        time.sleep(0.01)
    time.sleep(extra_s)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_killed_run_resumes_to_the_same_end(tmp_path, unbroken, seed):
    """SIGKILL at a random point (drawn from the seed: after 0-8 ticks, 0-0.3 s further on,
    sometimes leaving a torn half-written line), then resume."""
    draw = random.Random(seed)
    ticks, extra_s, torn = draw.randint(0, 8), draw.uniform(0.0, 0.3), draw.random() < 0.5
    out = tmp_path / "run"
    kill_after_ticks(out, ticks, extra_s)
    log = out / "log.jsonl"
    assert log.exists()
    if torn:
        with open(log, "ab") as file:  # what a crash in the middle of a write leaves
            file.write(b'{"kind":"decision","tick":99,"agent":1,"pro')
    result = run_cli("resume", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert "logged decisions reused" in result.stderr
    assert digests(log) == digests(unbroken)
    assert decision_set(log) == decision_set(unbroken)
    all_records = records(log)
    assert all_records[-1]["kind"] == "end" and all_records[-1]["status"] == "completed"
    resumed = of_kind(all_records, "resume")
    assert len(resumed) == 1 and resumed[0]["dropped_torn_line"] is torn
    assert run_cli("replay", str(out)).returncode == 0


def test_a_stopped_run_resumes_and_a_completed_one_is_left_alone(tmp_path, unbroken):
    out = tmp_path / "run"
    budget = ["--set", "inference.budget_tokens=1500000"]
    result = run_cli("run", str(CONFIG), "-q", "--out", str(out), *RUN, *budget)
    assert result.returncode == 0 and "stopped" in result.stdout
    stopped_at = len(digests(out / "log.jsonl"))
    assert 0 < stopped_at < 10
    config_budget = records(out / "log.jsonl")[0]["config"]["inference"]["budget_tokens"]
    assert config_budget == 1500000
    # The budget still holds on resume: the run stops again after one more tick.
    result = run_cli("resume", str(out), "-q")
    assert result.returncode == 0 and "stopped" in result.stdout
    assert len(digests(out / "log.jsonl")) == stopped_at + 1
    assert digests(out / "log.jsonl") == digests(unbroken)[: stopped_at + 1]

    done = tmp_path / "done"
    assert run_cli("run", str(CONFIG), "-q", "--ticks", "2", "--out", str(done)).returncode == 0
    result = run_cli("resume", str(done))
    assert result.returncode == 2 and "already completed; nothing to resume" in result.stderr


def test_posts_logged_before_a_crash_are_not_logged_again(tmp_path, unbroken):
    """Cut the log between tick 3's posts and its tick record, as a crash could, then resume."""
    out = tmp_path / "run"
    out.mkdir()
    lines = unbroken.read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":3,'))
    assert lines[cut - 1].startswith(b'{"kind":"post","tick":3,'), (
        "posts come right before the tick"
    )
    (out / "log.jsonl").write_bytes(b"".join(lines[:cut]))
    result = run_cli("resume", str(out), "-q")
    assert result.returncode == 0, result.stderr
    posts = [(p["tick"], p["post_id"]) for p in of_kind(records(out / "log.jsonl"), "post")]
    assert len(posts) == len(set(posts))
    assert sorted(posts) == sorted(
        (p["tick"], p["post_id"]) for p in of_kind(records(unbroken), "post")
    )
    assert digests(out / "log.jsonl") == digests(unbroken)


def test_a_run_that_closed_no_tick_still_reports_and_resumes(tmp_path, unbroken):
    out = tmp_path / "run"
    out.mkdir()
    lines = unbroken.read_bytes().splitlines(keepends=True)
    (out / "log.jsonl").write_bytes(b"".join(lines[:40]))  # the header and some of tick 0
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    assert "unfinished (no end record" in (out / "report" / "report.md").read_text()
    result = run_cli("replay", str(out), "--tick", "0")
    assert result.returncode == 2 and "no tick was closed yet" in result.stderr
    assert run_cli("resume", str(out), "-q").returncode == 0
    assert digests(out / "log.jsonl") == digests(unbroken)

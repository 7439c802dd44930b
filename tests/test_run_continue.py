"""``agora run --continue``: a Makefile target of several runs can be run again after any of
them stopped: a finished run is kept, a cut one resumes to the unbroken run's end, a run of
another config in the way is refused."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import CONFIG, of_kind, records, run_cli

RUN = ["--ticks", "4", "--set", "inference.offline.invalid_rate=0.1"]


def digests(log: Path) -> list[str]:
    return [r["digest"] for r in of_kind(records(log), "tick")]


def decisions(log: Path) -> list[tuple[int, int, str]]:
    return sorted((d["tick"], d["agent"], d["raw"]) for d in of_kind(records(log), "decision"))


def cut_after_tick(run_dir: Path, tick: int) -> None:
    """What a crash right after tick ``tick`` closed leaves: the log up to that tick's
    record, and no summary."""
    log = run_dir / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    last = max(
        i for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":%d,' % tick)
    )
    log.write_bytes(b"".join(lines[: last + 1]))
    (run_dir / "summary.json").unlink()


def test_continue_runs_keeps_resumes_and_refuses(tmp_path):
    out = tmp_path / "run"
    first = run_cli("run", str(CONFIG), "-q", "--out", str(out), "--continue", *RUN)
    assert first.returncode == 0, first.stderr
    log = out / "log.jsonl"
    unbroken, unbroken_decisions = digests(log), decisions(log)
    whole = log.read_bytes()

    again = run_cli("run", str(CONFIG), "-q", "--out", str(out), "--continue", *RUN)
    assert again.returncode == 0 and "completed earlier; kept as it is" in again.stderr
    assert log.read_bytes() == whole

    cut_after_tick(out, 1)
    assert len(digests(log)) == 2
    resumed = run_cli("run", str(CONFIG), "-q", "--out", str(out), "--continue", *RUN)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from tick 2" in resumed.stderr
    assert digests(log) == unbroken and decisions(log) == unbroken_decisions
    assert of_kind(records(log), "end")[-1]["status"] == "completed"

    other = run_cli(
        "run", str(CONFIG), "-q", "--out", str(out), "--continue", *RUN, "--ticks", "5"
    )  # fmt: skip
    assert other.returncode == 2
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.ticks: 4 then, 5 now" in lines[0], other.stderr

    plain = run_cli("run", str(CONFIG), "-q", "--out", str(out), *RUN)
    assert plain.returncode == 2 and "runs are never overwritten" in plain.stderr


def test_continue_reads_the_log_when_the_summary_is_gone_and_keeps_a_budget_stop(tmp_path):
    out = tmp_path / "run"
    assert run_cli("run", str(CONFIG), "-q", "--out", str(out), *RUN).returncode == 0
    (out / "summary.json").unlink()  # a stop between the log's end record and the summary
    whole = (out / "log.jsonl").read_bytes()
    kept = run_cli("run", str(CONFIG), "-q", "--out", str(out), "--continue", *RUN)
    assert kept.returncode == 0 and "completed earlier" in kept.stderr, kept.stderr
    assert (out / "log.jsonl").read_bytes() == whole

    stopped = tmp_path / "stopped"
    budget = [*RUN, "--set", "inference.budget_tokens=500000"]
    first = run_cli("run", str(CONFIG), "-q", "--out", str(stopped), *budget)
    assert first.returncode == 0, first.stderr
    ticks = len(digests(stopped / "log.jsonl"))
    assert 0 < ticks < 4 and records(stopped / "log.jsonl")[-1]["status"] == "stopped"
    again = run_cli("run", str(CONFIG), "-q", "--out", str(stopped), "--continue", *budget)
    assert again.returncode == 0 and "stopped by its budget" in again.stderr
    assert len(digests(stopped / "log.jsonl")) == ticks  # not another tick's spending


def test_continue_on_a_broken_log_is_one_line(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_bytes(b'{"kind":"run","conf')
    result = run_cli("run", str(CONFIG), "-q", "--out", str(out), "--continue", *RUN)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "header cannot be read" in lines[0], result.stderr

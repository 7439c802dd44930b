"""Replay: a finished run rebuilt from its log alone reproduces every recorded digest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest

from agora.engine.replay import Replayer, ReplayError, read_run
from agora.engine.runner import execute, plan_run
from tests.helpers import CONFIG, run_cli

NOW = datetime(2026, 1, 1, tzinfo=UTC)
pytestmark = pytest.mark.slow


def finished_run(tmp_path, name="run", **overrides):
    settings = {"run.out": str(tmp_path / name), "run.ticks": 6}
    settings.update(overrides)
    plan = plan_run(CONFIG, settings, now=NOW)
    asyncio.run(execute(plan))
    return plan.out_dir


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"inference.offline.invalid_rate": 0.3, "inference.max_reasks": 0},
        {"world.activation": 0.2, "world.offline.altruist_fraction": 0.5},
        {"policies.board.enabled": False},
    ],
    ids=["board", "invalid-answers", "activation", "no-board"],
)
def test_every_tick_replays_to_its_recorded_digest(tmp_path, overrides):
    run = finished_run(tmp_path, **overrides)
    logged = read_run(run)
    replayer = Replayer(logged)
    for tick in range(6):
        record = replayer.step()
        assert record.tick == tick
    assert replayer.tick == logged.last_tick == 5
    with pytest.raises(ReplayError, match="no record of tick 6"):
        replayer.step()


def test_an_independent_world_replays_too(tmp_path):
    config = tmp_path / "counter.toml"
    config.write_text('[world]\nkind = "tests.independent_world:PLUGIN"\nagents = 5\n')
    plan = plan_run(config, {"run.out": str(tmp_path / "c"), "run.ticks": 4}, now=NOW)
    asyncio.run(execute(plan))
    replayer = Replayer(read_run(plan.out_dir))
    replayer.advance_to(3)
    assert replayer.tick == 3


def test_an_edited_decision_is_caught_at_its_tick_and_named_by_its_own_line(tmp_path):
    run = finished_run(tmp_path)
    log = run / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    for index, line in enumerate(lines):
        record = msgspec.json.decode(line)
        if (
            record["kind"] == "decision"
            and record["tick"] == 2
            and record["action"]["move_to"] is None
        ):
            record["action"]["move_to"] = 1 if record["info"]["from"] != 1 else 2
            lines[index] = msgspec.json.encode(record) + b"\n"
            break
    log.write_bytes(b"".join(lines))
    tick_lines = [i + 1 for i, line in enumerate(lines) if b'"kind":"tick"' in line]
    replayer = Replayer(read_run(run))
    replayer.advance_to(1)
    with pytest.raises(
        ReplayError,
        match=rf"log\.jsonl:{index + 1}: the decision of agent {record['agent']} in tick 2 was "
        r"edited \(its check does not match the line\); tick 2 replays to digest",
    ):
        replayer.step()

    # Without the decision checks (a log from before them), the tick's line is named.
    log.write_bytes(b"".join(lines).replace(b'"format":3,', b'"format":1,', 1))
    header = msgspec.json.decode(log.read_bytes().splitlines()[0])
    del header["header_hash"]
    rest = log.read_bytes().split(b"\n", 1)[1]
    log.write_bytes(msgspec.json.encode(header) + b"\n" + rest)
    replayer = Replayer(read_run(run))
    replayer.advance_to(1)
    with pytest.raises(ReplayError, match=rf"log\.jsonl:{tick_lines[2]}: tick 2 replays to digest"):
        replayer.step()


def test_the_cli_replays_and_shows_a_tick(tmp_path):
    run = finished_run(tmp_path)
    result = run_cli("replay", str(run))
    assert result.returncode == 0, result.stderr
    assert (
        "6 ticks replayed from the log alone, every decision's check and state digest "
        "matches; run completed" in result.stdout
    )
    result = run_cli("replay", str(run), "--tick", "2", "--agent", "7")
    assert result.returncode == 0, result.stderr
    assert (
        "Tick 2 of" in result.stdout and "D9:" in result.stdout and "Message board" in result.stdout
    )
    assert "Decisions (1):" in result.stdout and "- agent 7:" in result.stdout
    result = run_cli("replay", str(run), "--tick", "9")
    assert result.returncode == 2 and "the log holds ticks 0 to 5" in result.stderr


def test_bad_logs_are_named_with_file_and_line(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "log.jsonl").write_text('{"kind":"like","tick":0,"agent":1,"post_id":1}\n')
    result = run_cli("replay", str(other))
    assert result.returncode == 2
    assert (
        result.stderr.startswith("agora replay: ")
        and "log.jsonl:1: an agora log starts with" in result.stderr
    )
    (other / "log.jsonl").write_text('{"kind":"run","run_id":"x","se')
    result = run_cli("replay", str(other))
    assert result.returncode == 2 and "log.jsonl:1: the run header is incomplete" in result.stderr
    result = run_cli("replay", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no such log" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_run_gives_one_frame_per_record_kind(tmp_path):
    import polars as pl

    import agora

    run = finished_run(
        tmp_path, **{"inference.offline.invalid_rate": 0.2, "inference.max_reasks": 0}
    )
    with open(run / "log.jsonl", "ab") as log:
        log.write(b'{"kind":"decision","tick":9')  # a torn last line is left out
    frames = agora.load_run(run)
    assert frames.header["seed"] == 7 and frames.end["status"] == "completed"
    assert frames.decisions.height == 225 * 6 and frames.ticks.height == 6
    assert frames.decisions.filter(~pl.col("valid")).height == frames.end["invalid"]
    poa = frames.ticks.select(pl.col("metrics").struct.field("poa")).to_series().to_list()
    assert all(0 < p <= 1 for p in poa)
    cells = frames.decisions.filter(pl.col("valid")).select(pl.col("info").struct.field("cell"))
    assert set(cells.to_series().to_list()) <= {f"{p}{s}" for p in "-0+" for s in "-0+"}
    posts, likes = frames.records["post"], frames.records["like"]
    assert posts.height > 0 and {"post_id", "author", "text"} <= set(posts.columns)
    assert likes.height > 0 and frames.of("like") is likes
    assert frames.header["records"] == {"post": "policies.board", "like": "policies.board"}


def test_frames_write_a_png_per_tick_and_an_animated_gif(tmp_path):
    from PIL import Image

    run = finished_run(tmp_path)
    result = run_cli("replay", str(run), "--frames", str(tmp_path / "frames"))
    assert result.returncode == 0, result.stderr
    pngs = sorted((tmp_path / "frames").glob("tick_*.png"))
    assert [p.name for p in pngs] == [f"tick_{t:05d}.png" for t in range(6)]
    with Image.open(tmp_path / "frames" / "run.gif") as gif:
        assert gif.n_frames == 6


def test_play_steps_through_every_tick(tmp_path):
    run = finished_run(tmp_path)
    result = run_cli("replay", str(run), "--play", "--delay", "0")
    assert result.returncode == 0, result.stderr
    assert [f"Tick {t} of" in result.stdout for t in range(6)] == [True] * 6


def test_report_summarises_a_run_with_figures(tmp_path):
    run = finished_run(
        tmp_path, **{"inference.offline.invalid_rate": 0.2, "inference.max_reasks": 0}
    )
    result = run_cli("report", str(run))
    assert result.returncode == 0, result.stderr
    report = (run / "report" / "report.md").read_text()
    for section in (
        "## Metrics over ticks",
        "| poa |",
        "## matrix (summed over the run)",
        "## Decisions",
        "Most common reasons an answer was invalid:",
        "## Final state",
        "Run status: completed.",
    ):
        assert section in report
    assert "offline behavioural model" in report
    for figure in ("metrics.png", "matrix.png", "decisions.png", "final_state.png"):
        assert (run / "report" / figure).stat().st_size > 1000
    result = run_cli("report", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no such log" in result.stderr

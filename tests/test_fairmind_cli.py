"""``agora fit`` and FairMindSim's report sections as a user runs them: a trials CSV, a run, a
run with missed rounds (prose answers from the mock server) and a sweep; bad input is one line
with exit code 2."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from agora.engine.frames import load_run
from agora.engine.inference.schema_answer import answer_from_schema
from agora.worlds.fairmind.fit_report import RESULTS_NAME, read_results
from agora.worlds.fairmind.metrics import punishment_rate
from agora.worlds.fairmind.models import BREM, INEQUALITY_AVERSION
from agora.worlds.fairmind.recovery import sample_parameters, simulate, spec_schedule
from tests.helpers import REPO, run_cli
from tests.mock_server_fixture import mock_server_process

FAST = ("--permutations", "20", "--restarts", "2", "--candidates", "8")
CONFIG = REPO / "runs" / "fairmind.toml"


def trials_csv(path: Path, agents: int = 6, rounds: int = 60) -> pl.DataFrame:
    """Simulated BREM agents (dataset "brem") and inequity-averse ones ("ia"), with ratings."""
    rng = np.random.default_rng(5)
    schedule = spec_schedule(rng).tiled(rounds)
    frames = []
    for name, model in (("brem", BREM), ("ia", INEQUALITY_AVERSION)):
        data = simulate(model, sample_parameters(model, agents, rng), schedule, rng)
        columns = data.to_columns()
        frame = pl.DataFrame(columns).with_columns(
            pl.lit(name).alias("dataset"),
            pl.Series("appraisal_valence", rng.integers(-100, 101, len(columns["agent"]))),
        )
        frames.append(frame)
    table = pl.concat(frames)
    table.write_csv(path)
    return table


def one_line_exit_2(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_fit_a_csv_writes_fits_and_a_summary_and_repeats_exactly(tmp_path):
    csv = tmp_path / "trials.csv"
    trials_csv(csv)
    first = run_cli("fit", str(csv), "--out", str(tmp_path / "a"), *FAST)
    assert first.returncode == 0, first.stderr
    assert "brem: 6 agents, 360 trials" in first.stdout
    fits = pl.read_csv(tmp_path / "a" / "fits.csv")
    assert fits.columns[:8] == [
        "dataset", "agent", "model", "n_trials", "loglik", "k", "aic", "accuracy",
    ]  # fmt: skip
    assert {"beta1", "beta2", "c", "eta", "epsilon", "alpha", "lam"} <= set(fits.columns)
    assert fits.height == 2 * 6 * 6
    assert set(fits["dataset"]) == {"brem", "ia"}
    brem = fits.filter(pl.col("model") == "BREM")
    assert np.allclose(brem["aic"], 2 * 4 - 2 * brem["loglik"])
    assert fits.filter(pl.col("model") == "BREM-NoPref")["eta"].is_nan().all()
    # Inequity-averse data are best explained by inequity aversion, on average.
    ia = fits.filter(pl.col("dataset") == "ia").group_by("model").agg(pl.col("aic").mean())
    assert ia.sort("aic")["model"][0] == "IA"

    summary = (tmp_path / "a" / "summary.md").read_text()
    for heading in ("Tables 3 and 6", "Table 4", "Permutation test (BREM, 20 shuffles)"):
        assert heading in summary
    assert "E_j = (P1_j − P2_j) / 30" in summary and "z(R_{j−1})" in summary
    assert "bel_0 = 1 (fixed, not fitted)" in summary
    results = read_results(tmp_path / "a" / RESULTS_NAME)
    assert results is not None and [d.name for d in results.datasets] == ["brem", "ia"]

    again = run_cli("fit", str(csv), "--out", str(tmp_path / "b"), *FAST)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "a" / "fits.csv").read_bytes() == (tmp_path / "b" / "fits.csv").read_bytes()
    other = run_cli("fit", str(csv), "--out", str(tmp_path / "c"), *FAST, "--seed", "1")
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "c" / "fits.csv").read_bytes() != (tmp_path / "a" / "fits.csv").read_bytes()


def test_recovery_from_the_cli_reports_every_length_and_the_confusion_matrix(tmp_path):
    csv = tmp_path / "trials.csv"
    trials_csv(csv, agents=3)
    result = run_cli(
        "fit", str(csv), "--out", str(tmp_path / "fit"), "--models", "BREM,IA,Rational",
        "--folds", "0", "--permutations", "0", "--recover", "--recover-agents", "12",
        "--recover-rounds", "60,120", "--restarts", "2", "--candidates", "8",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = read_results(tmp_path / "fit" / RESULTS_NAME)
    assert results is not None and results.recovery is not None
    rounds = {(p.model, p.rounds) for p in results.recovery.parameters}
    assert rounds == {(m, n) for m in ("BREM", "IA", "Rational") for n in (60, 120)}
    assert all(p.at_least_true >= 0.95 for p in results.recovery.parameters)
    confusion = results.recovery.models
    assert confusion.models == ["BREM", "IA", "Rational"]
    assert all(sum(row) == 12 for row in confusion.counts)
    summary = (tmp_path / "fit" / "summary.md").read_text()
    assert "| BREM | beta1 |" in summary and "r (120)" in summary
    assert "### Model recovery (12 agents per model, 60 rounds)" in summary


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


HEADER = "agent,round,p1_share,p2_share,cost,choice"
GOOD = [f"a,{r},25,5,3,{r % 2}" for r in range(1, 13)]


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        (["agent,round,p1_share,cost,choice", "a,1,25,3,1"], ["missing column 'p2_share'"]),
        ([HEADER, *GOOD[:3], "a,4,25,5,3,maybe"], ["trials.csv:5", "choice is 'maybe'"]),
        ([HEADER, *GOOD, "a,3,25,5,3,1"], ["trials.csv:14", "round 3", "duplicates line 4"]),
        ([HEADER, *GOOD[:4]], ["agent 'a' has 4 rounds", "at least 10"]),
        ([HEADER, *GOOD[:3], "a,4,45,5,3,1"], ["trials.csv:5", "p1_share is 45"]),
        ([HEADER, "a,1,25,5,,1"], ["trials.csv:2", "cost is empty"]),
        ([HEADER], ["no rows"]),
    ],
)
def test_a_bad_trials_csv_is_one_line_naming_line_or_column(tmp_path, rows, needles):
    path = _csv(tmp_path / "trials.csv", rows)
    one_line_exit_2(run_cli("fit", str(path), "--out", str(tmp_path / "out")), *needles)
    assert not (tmp_path / "out").exists()


def test_bad_affect_ratings_and_arguments_are_one_line(tmp_path):
    rows = [HEADER + ",feedback_valence", *[f"{row},10" for row in GOOD]]
    rows[3] = rows[3].rsplit(",", 1)[0] + ",150"
    path = _csv(tmp_path / "trials.csv", rows)
    one_line_exit_2(run_cli("fit", str(path), "--out", str(tmp_path / "o")), "trials.csv:4")
    one_line_exit_2(run_cli("fit", str(tmp_path / "nothing.csv"), "--out", "x"), "no such file")
    one_line_exit_2(run_cli("fit", str(tmp_path), "--out", "x"), "neither a run")
    usage = run_cli("fit", str(path), "--out", "x", "--models", "BREM,Nope")
    assert usage.returncode == 2 and "unknown model 'Nope'" in usage.stderr


def test_fit_a_run_then_its_report_shows_the_fits_and_figures(tmp_path):
    run_dir = tmp_path / "run"
    ran = run_cli("run", str(CONFIG), "--out", str(run_dir), "--agents", "6", "-q")
    assert ran.returncode == 0, ran.stderr
    fitted = run_cli("fit", str(run_dir), "--out", str(run_dir / "fit"), *FAST)
    assert fitted.returncode == 0, fitted.stderr
    fits = pl.read_csv(run_dir / "fit" / "fits.csv")
    assert set(fits["dataset"]) == {"offline-mix"} and fits.height == 36
    reported = run_cli("report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    report = (run_dir / "report" / "report.md").read_text()
    assert "## FairMindSim: Table 2" in report
    assert "written by `agora fit`" in report and "Permutation test" in report
    assert "the kind that played" in report  # offline agents: their kind against AIC's pick
    for figure in ("fairmind_surface.png", "fairmind_beliefs.png", "fairmind_entropy.png"):
        assert (run_dir / "report" / figure).stat().st_size > 1000
    row = next(line for line in report.splitlines() if line.startswith("| offline-mix | offline"))
    trials = load_run(run_dir).of("fairmind_trial")
    assert float(row.split("|")[6]) == pytest.approx(punishment_rate(trials), abs=5e-4)


def test_missed_rounds_are_counted_per_agent_and_never_dropped_silently(tmp_path):
    run_dir = tmp_path / "run"
    with mock_server_process("--rate-garbage", "0.3", "--seed", "2") as url:
        ran = run_cli(
            "run", str(CONFIG), "--out", str(run_dir), "--agents", "4", "--ticks", "20", "-q",
            "--backend", "openai-http", "--endpoint", url, "--model", "mock",
            "--set", "inference.max_reasks=0",
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    fitted = run_cli("fit", str(run_dir), "--out", str(run_dir / "fit"), *FAST, "--folds", "0")
    assert fitted.returncode == 0, fitted.stderr
    results = read_results(run_dir / "fit" / RESULTS_NAME)
    assert results is not None
    (dataset,) = results.datasets
    assert dataset.source == "mock" and dataset.missed
    # Every round of every agent is a fitted trial or a counted miss; no agent disappears.
    played = {str(f.agent): f.n_trials for f in dataset.fits if f.model == "BREM"}
    played.update(dataset.too_few)
    assert sorted(played) == ["0", "1", "2", "3"]
    assert all(played[a] + dataset.missed.get(a, 0) == 20 for a in played)
    summary = (run_dir / "fit" / "summary.md").read_text()
    assert "rounds without a valid answer" in summary


def test_a_sweep_is_one_dataset_per_model_through_fit_and_report(tmp_path):
    out = tmp_path / "sweep"
    text = (REPO / "runs" / "fairmind_sweep.toml").read_text()
    assert "seeds = [1, 2]" in text
    config = tmp_path / "fairmind_sweep.toml"
    config.write_text(text.replace("seeds = [1, 2]", "seeds = [1]"))
    swept = run_cli(
        "sweep", str(config), "--out", str(out), "--agents", "4", "--ticks", "30", "-q",
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    reported = run_cli("report", str(out))  # before any fit: fitted in place
    assert reported.returncode == 0, reported.stderr
    report = (out / "report" / "report.md").read_text()
    assert "Fitted for this report" in report
    for model in ("offline-brem", "offline-inequity-aversion", "offline-rational", "offline-mix"):
        assert f"| {model} | offline | 4 | 120 |" in report
    fitted = run_cli("fit", str(out), "--out", str(out / "fit"), *FAST, "--folds", "0")
    assert fitted.returncode == 0, fitted.stderr
    fits = pl.read_csv(out / "fit" / "fits.csv")
    assert fits["agent"].str.starts_with("seed1/").all()
    assert fits["dataset"].unique(maintain_order=True).to_list()[0] == "offline-brem"
    again = run_cli("report", str(out))
    assert again.returncode == 0, again.stderr
    assert "written by `agora fit`" in (out / "report" / "report.md").read_text()


def test_a_schema_answer_satisfies_its_schema_and_follows_the_seed():
    schema = {
        "type": "object",
        "properties": {
            "valence": {"type": "integer", "minimum": -100, "maximum": 100},
            "choice": {"type": "string", "enum": ["ACCEPT", "PUNISH"]},
            "reasoning": {"type": "string", "maxLength": 30},
            "weights": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
            "kind": {"const": "x"},
        },
        "required": ["valence", "choice"],
    }
    answers = [answer_from_schema(schema, np.random.default_rng(s)) for s in range(50)]
    for answer in answers:
        assert -100 <= answer["valence"] <= 100 and isinstance(answer["valence"], int)
        assert answer["choice"] in ("ACCEPT", "PUNISH")
        assert 1 <= len(answer["reasoning"]) <= 30
        assert all(0 <= w <= 1 and not math.isnan(w) for w in answer["weights"])
        assert answer["kind"] == "x"
    assert {a["choice"] for a in answers} == {"ACCEPT", "PUNISH"}
    assert answer_from_schema(schema, np.random.default_rng(7)) == answers[7]


def test_agents_too_short_to_fit_still_count_in_table_2(tmp_path):
    run = tmp_path / "short"
    result = run_cli(
        "run", str(REPO / "runs" / "fairmind.toml"), "--out", str(run), "--ticks", "3",
        "--agents", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert run_cli("report", str(run)).returncode == 0
    report = (run / "report" / "report.md").read_text()
    assert "| offline-mix | offline | 2 | 6 | 0 |" in report  # 2 agents × 3 rounds played


def test_a_broken_run_or_an_unwritable_out_is_one_line_and_models_count_once(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "log.jsonl").write_text("")
    one_line_exit_2(run_cli("fit", str(broken), "--out", str(tmp_path / "o")), "not a readable")
    csv = tmp_path / "trials.csv"
    trials_csv(csv)
    (tmp_path / "file").write_text("")
    one_line_exit_2(
        run_cli("fit", str(csv), "--out", str(tmp_path / "file"), *FAST), "--out", "cannot write"
    )
    twice = run_cli(
        "fit", str(csv), "--out", str(tmp_path / "twice"), *FAST, "--models", "brem,BREM"
    )
    assert twice.returncode == 0, twice.stderr
    fits = pl.read_csv(tmp_path / "twice" / "fits.csv")
    assert (
        fits["model"].to_list().count("BREM")
        == fits["agent"].n_unique() * fits["dataset"].n_unique()
    )

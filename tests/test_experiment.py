"""The Schelling altruism experiment end to end, as `make schelling-experiment` runs it:
sweep → report with the archetype verdicts, altruism rates and the coded reasonings."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.slow

SWEEP = REPO / "runs" / "schelling_altruism.toml"


def test_the_offline_experiment_meets_both_archetypes_and_reports_them(tmp_path):
    out = tmp_path / "experiment"
    sweep = run_cli("sweep", str(SWEEP), "--out", str(out), "-q", timeout=600)
    assert sweep.returncode == 0, sweep.stderr
    assert "36 of 36 runs done" in sweep.stdout

    report = run_cli("report", str(out), timeout=600)
    assert report.returncode == 0, report.stderr
    folder = out / "report"
    verdicts = json.loads((folder / "archetypes.json").read_text())
    overall = {v["model"]: v for v in verdicts["overall"]}
    assert overall["adaptive-egoists"]["verdict"] == "Adaptive Egoist"
    assert overall["altruistic-optimizers"]["verdict"] == "Altruistic Optimizer"
    assert overall["mixed-population"]["verdict"] == "undetermined"

    egoists = overall["adaptive-egoists"]
    without, with_ = egoists["without_board"], egoists["with_board"]
    assert with_["rate"]["estimate"] > without["rate"]["estimate"], "the board raises altruism"
    assert egoists["decided_by"] == "cluster" and egoists["p_value"] < 0.05
    assert without["runs"] == with_["runs"] == 6, "two framings × three seeds per condition"
    optimizers = overall["altruistic-optimizers"]
    assert optimizers["without_board"]["poa"] >= 0.95 and optimizers["with_board"]["poa"] >= 0.95
    # Per framing (the robustness table) each verdict rests on half the runs: the optimizers'
    # holds, and the egoists' board effect keeps its direction.
    by_framing = {(v["framing"], v["model"]): v for v in verdicts["by_framing"]}
    for framing in ("neutral", "welfare_first"):
        assert by_framing[(framing, "altruistic-optimizers")]["verdict"] == "Altruistic Optimizer"
        egoists_here = by_framing[(framing, "adaptive-egoists")]
        assert egoists_here["difference"]["difference"] > 0

    coding = json.loads((folder / "coding.json").read_text())
    rules = coding["coders"][0]
    cores = {(g["group"]["model"], g["group"]["condition"]): g["core"] for g in rules["groups"]}
    assert len(cores) == 12
    assert cores[("altruistic-optimizers", "no-board")]["category"] == "collective_welfare"
    assert cores[("adaptive-egoists", "no-board")]["category"] == "self_interest"
    board_codes = {
        c["code"]: c["count"]
        for g in rules["groups"]
        if g["group"] == {"model": "adaptive-egoists", "condition": "board"}
        for c in g["codes"]
    }
    assert board_codes.get("board_norm", 0) > 0, "persuaded egoists cite the board"

    text = (folder / "report.md").read_text()
    for heading in (
        "## Equilibrium",
        "## Metrics over ticks",
        "## `matrix` summed over ticks and seeds",
        "## Altruistic acts per model and condition",
        "## Archetype verdict per model (all framings)",
        "## Archetype verdict per model and framing (robustness)",
        "## Reasoning codes (grounded theory)",
    ):
        assert heading in text, heading
    for figure in ("poa_over_ticks.png", "matrix_matrices.png", "altruism_rates.png"):
        assert (folder / figure).stat().st_size > 1000

    # A rerun skips every finished run.
    again = run_cli("sweep", str(SWEEP), "--out", str(out))
    assert again.returncode == 0, again.stderr
    manifest = json.loads((out / "sweep.json").read_text())
    assert {r["status"] for r in manifest["runs"]} == {"skipped"}


def test_a_judge_coder_runs_beside_the_rules_and_agreement_is_reported(tmp_path):
    config = tmp_path / "sweep.toml"
    text = SWEEP.read_text()
    assert "seeds = [1, 2, 3]" in text
    text = text.replace("seeds = [1, 2, 3]", "seeds = [1]").replace(
        "quotes = 2\n", 'quotes = 2\njudge = { backend = "offline" }\n'
    )
    config.write_text(text)
    out = tmp_path / "experiment"
    sweep = run_cli("sweep", str(config), "--out", str(out), "-q", "--ticks", "4", timeout=600)
    assert sweep.returncode == 0, sweep.stderr
    report = run_cli("report", str(out), timeout=600)
    assert report.returncode == 0, report.stderr
    coding = json.loads((out / "report" / "coding.json").read_text())
    assert len(coding["coders"]) == 2
    agreement = coding["agreement"]
    assert agreement["items"] > 0 and agreement["mean_kappa"] == pytest.approx(1.0)
    # One item per distinct reasoning: repeats are not further judgements.
    assert agreement["items"] == coding["coders"][1]["texts"] < coding["sampled"]
    assert "offline stand-in" in (agreement["note"] or "")
    assert "### Agreement:" in (out / "report" / "report.md").read_text()


def test_a_bad_judge_table_is_named_before_anything_runs(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(
        SWEEP.read_text().replace("quotes = 2\n", 'quotes = 2\njudge = { backend = "gpt" }\n')
    )
    result = run_cli("sweep", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "sweep.analysis.judge.backend" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()

"""``agora mechanism``'s study end to end on a tiny Llama saved in the test (no downloads):
prompts recorded from the world, a direction with provenance, steered runs through the engine,
transfer, patching, the report."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agora.engine.inference.local import directions
from agora.worlds.allocation.mechanism import PAIR_ENDOWMENTS, Plan, run_study
from agora.worlds.allocation.texts import load_texts
from tests.helpers import REPO
from tests.local.tiny import saved_tiny

pytestmark = pytest.mark.local


def decisions(run):
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == "decision"]


def test_the_study_runs_on_a_tiny_model(tmp_path):
    folder = tmp_path / "tiny-llama"
    saved_tiny(folder)
    out = tmp_path / "study"
    plan = Plan(
        config=REPO / "runs" / "dictator.toml",
        model_path=folder,
        out=out,
        model_name="tiny",
        layers=(1,),
        strengths=(-2.0, 0.0, 2.0),
        samples=2,
        transfer_strength=2.0,
    )
    report = run_study(plan, say=lambda line: None).read_text()
    meta, vectors = directions.load(out / "direction.npz")
    stances = load_texts(None, None).stances
    assert sorted(vectors) == [0, 1] and meta.model_sha256 and meta.method == "mean_difference"
    assert len(meta.positive) == len(PAIR_ENDOWMENTS)
    assert all(stances["generous"] in text for text in meta.positive)
    assert all(stances["selfish"] in text for text in meta.negative)
    facts = json.loads((out / "study.json").read_text())
    assert [row["layer"] for row in facts["patching"]] == [1]
    assert facts["patching"][0]["positions"] > 0
    for game in ("ultimatum", "trust", "trust_return", "public_goods", "third_party_punishment"):
        assert f"| {game} |" in report
    assert "Spearman" in report and "| 1 |" in report
    made = decisions(out / "runs" / "dictator" / "L1" / "strength+2")
    steering = {"steer_direction": str(out / "direction.npz"), "steer_layers": 1}
    assert made and all(d["params"] == {**steering, "steer_strength": 2.0} for d in made)
    assert all(d["params"] == {} for d in decisions(out / "runs" / "dictator" / "strength0"))
    assert "(1.00)" in report  # every answer valid: the values are scored, not parsed
    # A rerun keeps the finished runs (same model, direction, settings) and rewrites the
    # report; a run of other settings is made again.
    cell = out / "runs" / "dictator" / "L1" / "strength+2" / "log.jsonl"
    before = cell.stat().st_mtime_ns
    said: list[str] = []
    run_study(plan, say=said.append)
    assert cell.stat().st_mtime_ns == before and any("kept" in line for line in said)
    changed = Plan(**{**plan.__dict__, "samples": 3})
    run_study(changed, say=lambda line: None)
    assert cell.stat().st_mtime_ns != before
    # Another config (its bytes, not its path) is another cell too.
    config = tmp_path / "dictator.toml"
    config.write_text(plan.config.read_text().replace("max_tokens = 64", "max_tokens = 48"))
    before = cell.stat().st_mtime_ns
    run_study(Plan(**{**changed.__dict__, "config": config}), say=lambda line: None)
    assert cell.stat().st_mtime_ns != before
    assert "(1.00)" in (out / "report.md").read_text()


def test_the_study_steers_along_a_given_direction_with_free_text_answers(tmp_path):
    """--direction (an SAE feature's row, say) and --answer generate, from the command line:
    the study steers at the file's layer, its answers are parsed (the valid rate counts the
    invalid ones) and the report names the direction and the mode."""
    import numpy as np

    from tests.helpers import run_cli

    folder = tmp_path / "tiny-llama"
    local = saved_tiny(folder)
    hidden = local.model.config.hidden_size
    np.savez(tmp_path / "sae.npz", W_dec=np.eye(hidden, dtype=np.float32))
    feature = tmp_path / "feature3.npz"
    made = run_cli(
        "direction", "sae", "--sae", str(tmp_path / "sae.npz"), "--feature", "3",
        "--layer", "1", "--model-path", str(folder), "--out", str(feature),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "study"
    result = run_cli(
        "mechanism", "--model-path", str(folder), "--out", str(out), "--direction",
        str(feature), "--answer", "generate", "--strengths=-2,2", "--samples", "2",
        "--transfer-strength", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    facts = json.loads((out / "study.json").read_text())
    assert facts["layers"] == [1] and facts["answer"] == "generate"
    assert facts["direction"]["method"] == "sae_feature" and facts["direction"]["feature"] == 3
    assert not (out / "direction.npz").exists()  # steered along the given one
    assert "feature 3), given to the study" in report and "--answer generate" in report
    assert "| third_party_punishment |" in report
    cell = out / "runs" / "dictator" / "L1" / "strength+2"
    header = json.loads((cell / "log.jsonl").read_text().splitlines()[0])
    assert header["config"]["inference"]["options"]["answer"] == "generate"
    made = decisions(cell)
    assert made and all(d["params"]["steer_direction"] == str(feature) for d in made)
    assert all(d["params"]["steer_strength"] == 2.0 for d in made)
    bad = run_cli("mechanism", "--model-path", str(folder), "--out", str(out),
                  "--direction", str(tmp_path / "none.npz"))  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1

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
from tests.local.tiny import tiny

pytestmark = pytest.mark.local


def test_the_study_runs_on_a_tiny_model(tmp_path):
    local = tiny()
    folder = tmp_path / "tiny-llama"
    local.model.save_pretrained(folder)
    local.tokenizer.save_pretrained(folder)
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
    for game in ("ultimatum", "trust", "trust_return", "public_goods"):
        assert f"| {game} |" in report
    assert "Spearman" in report and "| 1 |" in report
    logged = (out / "runs" / "dictator" / "L1" / "strength+2" / "log.jsonl").read_text()
    assert '"steer_strength":2.0' in logged.replace(" ", "")  # in the header and decisions
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
    assert "(1.00)" in (out / "report.md").read_text()

"""Every decision record carries the request parameters it was asked with
(``inference.params``: a steering strength, say); logs from before have none; the local
backend's response cache tells apart new contents written to the same paths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import msgspec
import numpy as np

from agora.engine.inference.local import LOCAL, directions
from agora.engine.inference.local.options import LocalOptions
from agora.engine.records import Decision
from tests.helpers import REPO, run_cli

CONFIG = REPO / "runs" / "dictator.toml"


def decisions(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == "decision"]


def test_each_decision_records_the_runs_request_parameters(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run", str(CONFIG), "--out", str(out), "--set", "world.samples=2",
        "--set", "inference.params.probe=7", "--set", "inference.params.label=a",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    made = decisions(out)
    assert len(made) == 6 and all(d["params"] == {"probe": 7, "label": "a"} for d in made)
    assert run_cli("replay", str(out)).returncode == 0
    plain = tmp_path / "plain"
    assert run_cli("run", str(CONFIG), "--out", str(plain)).returncode == 0
    assert all(d["params"] == {} for d in decisions(plain))


def test_a_log_from_before_decisions_had_parameters_reads_as_none():
    log = REPO / "tests" / "data" / "format2_city" / "log.jsonl"
    old = [line for line in log.read_bytes().splitlines() if b'"kind":"decision"' in line]
    assert old and all(b'"params"' not in line for line in old)
    assert all(msgspec.json.decode(line, type=Decision).params == {} for line in old)


def test_the_local_cache_tells_new_contents_at_the_same_paths_apart(tmp_path):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights one")
    direction = tmp_path / "direction.npz"

    def write(vector: list[float]) -> None:
        meta = directions.Direction("sae_feature", [1], len(vector))
        directions.save(direction, meta, {1: np.asarray(vector, dtype=np.float32)})

    def variant() -> str:
        settings = SimpleNamespace(params={"steer_direction": str(direction)})
        return LOCAL.cache_variant(settings, LocalOptions(model_path=str(weights)))  # type: ignore[arg-type]

    write([1.0, 0.0])
    first = variant()
    assert variant() == first  # the same files: the same answers may be reused
    write([0.0, 1.0])  # another feature written over the same file
    second = variant()
    assert second != first
    weights.write_bytes(b"weights two, longer")  # new weights at the same path
    os.utime(weights, ns=(1, 1))
    assert variant() != second

"""``agora direction``: an SAE feature's decoder row saved as a steering direction with its
provenance, what a direction file holds, and the layer a sae-lens config names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agora.engine.inference.local import directions
from tests.helpers import one_line_exit_2, run_cli


def test_an_sae_feature_becomes_a_direction_file_with_its_provenance(tmp_path):
    decoder = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "sae.npz", W_dec=decoder)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights")
    out = tmp_path / "feature2.npz"
    result = run_cli(
        "direction", "sae", "--sae", str(tmp_path / "sae.npz"), "--feature", "2",
        "--layer", "5", "--model-path", str(model), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "feature 2" in result.stdout and "layer 5" in result.stdout
    meta, vectors = directions.load(out)
    assert meta.method == "sae_feature" and meta.feature == 2 and meta.layers == [5]
    assert np.array_equal(vectors[5], [6, 7, 8])
    assert meta.model_sha256 == directions.file_sha256(model) and meta.created
    shown = run_cli("direction", "show", str(out))
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts["feature"] == 2 and facts["norms"]["5"] == pytest.approx(np.sqrt(149), abs=1e-5)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--feature", "9", "--layer", "1"], "feature 9 is not among its 4"),
        (["--feature", "1"], "names no layer"),
        (["--feature", "-1", "--layer", "1"], "--feature"),
    ],
)
def test_a_feature_that_is_not_there_is_one_line(tmp_path, args, needle):
    np.savez(tmp_path / "sae.npz", W_dec=np.zeros((4, 3), dtype=np.float32))
    result = run_cli(
        "direction", "sae", "--sae", str(tmp_path / "sae.npz"), *args,
        "--out", str(tmp_path / "d.npz"),
    )  # fmt: skip
    one_line_exit_2(result, needle)
    assert not (tmp_path / "d.npz").exists()


def test_a_file_that_is_no_direction_is_one_line(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    one_line_exit_2(run_cli("direction", "show", str(tmp_path / "junk.npz")), "not a direction")
    one_line_exit_2(run_cli("direction", "show", str(tmp_path / "none.npz")), "no such")


@pytest.mark.parametrize(
    ("config", "layer"),
    [
        ({"hook_name": "blocks.12.hook_resid_post", "hook_layer": 12}, 12),
        ({"hook_name": "blocks.12.hook_resid_pre", "hook_layer": 12}, 11),  # block 11's output
        ({"hook_layer": 7}, 7),
        ({"meta": {"hook_name": "blocks.4.hook_resid_post"}}, 4),  # sae-lens 6
    ],
)
def test_the_layer_a_sae_lens_config_names(config, layer):
    assert directions.sae_layer(config, Path("sae")) == layer


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"hook_name": "blocks.3.hook_mlp_out"}, "not the residual stream"),
        ({"hook_name": "blocks.0.hook_resid_pre"}, "embeddings"),
        ({}, "names no layer"),
    ],
)
def test_a_config_that_names_no_block_output_is_refused(config, needle):
    with pytest.raises(directions.DirectionError, match=needle):
        directions.sae_layer(config, Path("sae"))


def test_an_sae_file_of_the_wrong_shape_or_config_is_one_line(tmp_path):
    np.savez(tmp_path / "flat.npz", W_dec=np.zeros(5, dtype=np.float32))
    one_line_exit_2(
        run_cli("direction", "sae", "--sae", str(tmp_path / "flat.npz"), "--feature", "0",
                "--layer", "1", "--out", str(tmp_path / "d.npz")),
        "expected features × hidden",
    )  # fmt: skip
    folder = tmp_path / "sae"
    folder.mkdir()
    (folder / "cfg.json").write_text("[1, 2]")
    one_line_exit_2(
        run_cli("direction", "sae", "--sae", str(folder), "--feature", "0",
                "--out", str(tmp_path / "d.npz")),
        "not a JSON object",
    )  # fmt: skip
    np.savez(tmp_path / "sae.npz", W_dec=np.zeros((2, 3), dtype=np.float32))
    (tmp_path / "blocked").write_text("a file, not a folder")
    one_line_exit_2(
        run_cli("direction", "sae", "--sae", str(tmp_path / "sae.npz"), "--feature", "0",
                "--layer", "1", "--out", str(tmp_path / "blocked" / "d.npz")),
        "blocked",
    )  # fmt: skip


def test_an_sae_features_provenance_names_no_token_position(tmp_path):
    np.savez(tmp_path / "sae.npz", W_dec=np.eye(3, dtype=np.float32))
    meta, _ = directions.sae_feature(tmp_path / "sae.npz", 1, layer=0)
    assert meta.position == ""

"""The local white-box backend on a tiny randomly initialised Llama built here (no downloads):
steering hooks, their removal, directions, patching, integer scoring, the transport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agora.engine.inference.cache import ResponseCache  # noqa: E402
from agora.engine.inference.errors import InferenceError  # noqa: E402
from agora.engine.inference.local import directions  # noqa: E402
from agora.engine.inference.local.client import LocalClient, integer_answer  # noqa: E402
from agora.engine.inference.local.layers import decoder_layers  # noqa: E402
from agora.engine.inference.local.options import LocalOptions  # noqa: E402
from agora.engine.inference.local.patching import capture, patched  # noqa: E402
from agora.engine.inference.local.steering import hook_count, steered  # noqa: E402
from agora.engine.records import Message, Request  # noqa: E402
from tests.local.tiny import local_run, saved_tiny, tiny  # noqa: E402

pytestmark = pytest.mark.local

PROMPTS = ["user: you have 100\nassistant: ", "user: give some away\nassistant: "]


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def test_steering_at_the_last_block_changes_the_logits_by_the_expected_amount():
    local = tiny()
    model, inputs = local.model, local.encode(PROMPTS)
    last = len(decoder_layers(model)) - 1
    vector = torch.randn(local.hidden_size)
    plain = capture(model, inputs, [last])[last]
    with steered(model, {last: vector}, 2.5):
        steered_logits = logits(model, inputs)
    # By hand: the final norm and the unembedding of (the block's output + 2.5 × v).
    with torch.no_grad():
        expected = model.lm_head(model.model.norm(plain + 2.5 * vector))
    assert torch.allclose(steered_logits, expected, atol=1e-5)
    assert not torch.allclose(steered_logits, logits(model, inputs), atol=1e-3)


def test_the_hooks_are_removed_after_the_run_and_after_an_error():
    local = tiny()
    model, inputs = local.model, local.encode(PROMPTS)
    before = logits(model, inputs)
    with steered(model, {0: torch.ones(local.hidden_size), 1: torch.ones(local.hidden_size)}, 3):
        assert hook_count(model) == 2
    assert hook_count(model) == 0
    seen = []

    def fail_while_steered() -> None:
        with steered(model, {1: torch.ones(local.hidden_size)}, -4):
            seen.append(hook_count(model))
            raise RuntimeError("mid-generation")

    with pytest.raises(RuntimeError, match="mid-generation"):
        fail_while_steered()
    assert seen == [1]
    assert hook_count(model) == 0
    assert torch.equal(logits(model, inputs), before)
    with steered(model, {0: torch.ones(local.hidden_size)}, 0.0):
        assert hook_count(model) == 0  # strength 0 adds nothing at all
    with (
        pytest.raises(ValueError, match="not among the model's 2"),
        steered(model, {5: torch.ones(local.hidden_size)}, 1.0),
    ):
        pass
    assert hook_count(model) == 0


def test_the_mean_difference_direction_on_constructed_activations(tmp_path):
    positive = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    negative = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [1.0, -1.0, 4.0]])
    difference = directions.mean_difference(positive, negative)
    # Means (2, 2, 2) and (1, 1/3, 2): the difference by hand.
    assert np.allclose(difference, [1.0, 5.0 / 3.0, 0.0])
    with pytest.raises(ValueError, match="one width"):
        directions.mean_difference(positive, negative[:, :2])
    meta = directions.Direction("mean_difference", [], 3, positive=["a"], negative=["b"])
    path = tmp_path / "d.npz"
    directions.save(path, meta, {4: difference, 2: -difference})
    loaded, vectors = directions.load(path)
    assert loaded.layers == [2, 4] and loaded.positive == ["a"]
    assert np.allclose(vectors[4], difference) and np.allclose(vectors[2], -difference)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(directions.DirectionError, match=r"bad\.npz: not a direction file"):
        directions.load(tmp_path / "bad.npz")


def test_last_token_activations_are_each_prompts_own_despite_left_padding():
    local = tiny()
    batched = directions.last_token_activations(local.model, local.encode(PROMPTS), [0, 1])
    for k, prompt in enumerate(PROMPTS):
        alone = directions.last_token_activations(local.model, local.encode([prompt]), [0, 1])
        for layer in (0, 1):
            assert np.allclose(batched[layer][k], alone[layer][0], atol=1e-5)


def test_an_sae_feature_is_its_decoder_row(tmp_path):
    decoder = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "sae.npz", W_dec=decoder)
    meta, vectors = directions.sae_feature(tmp_path / "sae.npz", 2, layer=1)
    assert meta.method == "sae_feature" and meta.feature == 2 and np.allclose(vectors[1], [6, 7, 8])
    with pytest.raises(directions.DirectionError, match="feature 9 is not among its 4"):
        directions.sae_feature(tmp_path / "sae.npz", 9, layer=1)
    with pytest.raises(directions.DirectionError, match="names no layer"):
        directions.sae_feature(tmp_path / "sae.npz", 1)


def test_a_sae_lens_folder_gives_its_layer(tmp_path):
    from safetensors.numpy import save_file

    folder = tmp_path / "sae"
    folder.mkdir()
    save_file({"W_dec": np.eye(3, dtype=np.float32)}, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({"hook_name": "blocks.1.hook_resid_post"}))
    meta, vectors = directions.sae_feature(folder, 2)
    assert meta.layers == [1] and np.array_equal(vectors[1], [0, 0, 1])


def test_patching_at_a_layer_reproduces_the_donors_activations():
    local = tiny()
    model = local.model
    donor_inputs = local.encode(["user: be generous\nassistant: "])
    receiver_inputs = local.encode(["user: be selfish!\nassistant: "])  # the same length
    assert donor_inputs["input_ids"].shape == receiver_inputs["input_ids"].shape
    donor = capture(model, donor_inputs, [0, 1])
    width = donor_inputs["input_ids"].shape[1]
    with patched(model, 0, donor[0], list(range(width))):
        seen = capture(model, receiver_inputs, [0, 1])
        out = logits(model, receiver_inputs)
    assert torch.allclose(seen[0], donor[0]) and torch.allclose(seen[1], donor[1], atol=1e-5)
    assert torch.allclose(out, logits(model, donor_inputs), atol=1e-5)
    # Only the last position patched: block 0's output there is the donor's, elsewhere not.
    with patched(model, 0, donor[0], [-1]):
        partial = capture(model, receiver_inputs, [0])[0]
    assert torch.allclose(partial[:, -1], donor[0][:, -1])
    differs = int((donor_inputs["input_ids"][0] != receiver_inputs["input_ids"][0]).nonzero()[0])
    assert not torch.allclose(partial[:, differs], donor[0][:, differs])
    assert hook_count(model) == 0


def test_scoring_integers_matches_the_sequence_log_probabilities():
    local = tiny()
    prompt = "user: how much?\nassistant: "
    scores, _ = local.score_integers(prompt, "amount", 0, 12)
    head = prompt + '{"amount":'
    brute = []
    for value in range(13):
        ids = local.tokenizer(f"{head} {value}}}", add_special_tokens=False)["input_ids"]
        start = len(local.tokenizer(head, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            lp = torch.log_softmax(local.model(input_ids=torch.tensor([ids])).logits[0], -1)
        brute.append(sum(float(lp[j - 1, ids[j]]) for j in range(start, len(ids))))
    gap = np.asarray(brute) - scores  # equal up to one constant (the shared " ")
    assert np.ptp(gap) < 1e-4


def test_an_integer_schema_is_recognised():
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer", "minimum": 0, "maximum": 100}},
        "required": ["amount"],
    }
    assert integer_answer(schema, 1001) == ("amount", 0, 100)
    assert integer_answer(schema, 50) is None
    with_reason = {**schema, "required": ["amount", "reasoning"]}
    assert integer_answer(with_reason, 1001) is None


def client_with(local, **options) -> LocalClient:
    client = LocalClient(LocalOptions(model_path="tiny", **options), "tiny")
    client._model = local  # the test's model, not one loaded from a path
    return client


def ask(params=None, seed=1, temperature=1.0) -> Request:
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer", "minimum": 0, "maximum": 20}},
        "required": ["amount"],
    }
    return Request(
        agent_id=0,
        tick=0,
        messages=(Message("user", "How much of 20 do you give?"),),
        seed=seed,
        temperature=temperature,
        answer_schema=schema,
        params=params or {},
    )


def test_the_transport_answers_scored_seeded_and_steered(tmp_path):
    local = tiny()
    client = client_with(local)

    async def answers(requests):
        return await asyncio.gather(*(client.complete(r) for r in requests))

    first = asyncio.run(answers([ask(seed=s) for s in range(12)]))
    again = asyncio.run(answers([ask(seed=s) for s in range(12)]))
    values = [json.loads(c.text)["amount"] for c in first]
    assert values == [json.loads(c.text)["amount"] for c in again]  # the seed decides
    assert all(0 <= v <= 20 for v in values) and len(set(values)) > 1
    greedy = asyncio.run(answers([ask(seed=s, temperature=0.0) for s in range(3)]))
    assert len({c.text for c in greedy}) == 1

    path = tmp_path / "d.npz"
    vector = np.random.default_rng(0).normal(size=local.hidden_size).astype(np.float32)
    meta = directions.Direction("mean_difference", [], local.hidden_size)
    directions.save(path, meta, {1: vector * 50})
    steer = {"steer_direction": str(path), "steer_layers": [1], "steer_strength": 1.0}
    steered_values = [
        json.loads(c.text)["amount"]
        for c in asyncio.run(answers([ask(steer, seed=s, temperature=0.0) for s in range(1)]))
    ]
    plain_value = json.loads(greedy[0].text)["amount"]
    scores_plain, _ = local.score_integers(
        local.render([{"role": "user", "content": "How much of 20 do you give?"}]), "amount", 0, 20
    )
    assert steered_values[0] != plain_value
    assert np.argmax(scores_plain) == plain_value  # unsteered greedy = the top-scored value
    assert hook_count(local.model) == 0

    bad = {"steer_direction": str(path), "steer_layers": [0], "steer_strength": 1.0}
    with pytest.raises(InferenceError, match="no vector for layers \\[0\\]") as caught:
        asyncio.run(client.complete(ask(bad)))
    assert not caught.value.retryable


def test_cache_keys_differ_by_strength(tmp_path):
    cache = ResponseCache(tmp_path, "local")
    keys = {
        cache.key("tiny", ask({"steer_direction": "d.npz", "steer_strength": s}))
        for s in (-2, 0, 2)
    }
    assert len(keys) == 3


def test_a_saved_model_folder_loads_and_serves_a_run(tmp_path):
    import agora
    from agora.engine.inference.local.model import LocalModel

    folder = tmp_path / "tiny-llama"
    local = saved_tiny(folder)
    loaded = LocalModel.load(folder)
    inputs = loaded.encode(PROMPTS)
    assert torch.allclose(logits(loaded.model, inputs), logits(local.model, inputs), atol=1e-5)
    assert len(loaded.sha256) == 64 and loaded.sha256 == LocalModel.load(folder).sha256

    out = tmp_path / "run"
    done = agora.run(
        Path(__file__).resolve().parents[2] / "runs" / "schelling_city.toml",
        out=out,
        ticks=1,
        overrides=local_run(folder, **{"world.agents": 4}),
    )
    assert done.summary.decisions == 4 and done.summary.errors == 0
    frames = agora.load_run(out)
    assert frames.header["backend"] == "local"
    facts = frames.header["endpoints"]["local"]  # what prepare() learnt, in the header
    assert facts["sha256"] == loaded.sha256 and facts["layers"] == 2


def test_free_text_answers_do_not_depend_on_their_batch():
    local = tiny()
    client = client_with(local, batch_size=8)

    def free(seed: int, temperature: float, max_tokens: int) -> Request:
        return Request(
            agent_id=seed,
            tick=0,
            messages=(Message("user", "Say something."),),
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
            answer_schema=None,
        )

    async def answers(requests):
        return await asyncio.gather(*(client.complete(r) for r in requests))

    alone = asyncio.run(answers([free(1, 0.0, 3)]))[0]
    mixed = asyncio.run(answers([free(1, 0.0, 3), free(2, 1.5, 20), free(3, 0.0, 9)]))
    assert mixed[0].text == alone.text and mixed[0].tokens_out <= 3
    assert asyncio.run(answers([free(2, 1.5, 20)]))[0].text == mixed[1].text


def test_a_path_that_is_no_model_and_a_bad_direction_are_one_line(tmp_path):
    from tests.helpers import CONFIG, one_line_exit_2, run_cli

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    base = ["run", str(CONFIG), "--ticks", "1", "--agents", "4", "--backend", "local"]
    result = run_cli(
        *base, "--model", "m", "--out", str(tmp_path / "a"),
        "--set", f"inference.local.model_path={junk}",
    )  # fmt: skip
    one_line_exit_2(result, "inference.local.model_path", "could not be loaded")
    bad = tmp_path / "d.npy"
    np.save(bad, np.zeros(3))
    result = run_cli(
        *base, "--model", "m", "--out", str(tmp_path / "b"),
        "--set", f"inference.local.model_path={junk}",
        "--set", f"inference.params.steer_direction={bad}",
        "--set", "inference.params.steer_strength=2",
    )  # fmt: skip
    one_line_exit_2(result, "inference.params.steer_direction", "not a direction file")


def test_fairminds_punishment_game_runs_steered_on_the_local_backend(tmp_path):
    """FairMindSim's own third-party punishment game, steered as any world is: through
    inference.params, in every decision record; a 2-layer random model writes no valid JSON,
    so each round is invalid with its reason, recorded, never a crash or a default."""
    import agora

    folder = tmp_path / "tiny-llama"
    local = saved_tiny(folder)
    direction = tmp_path / "direction.npz"
    vector = np.ones(local.model.config.hidden_size, dtype=np.float32)
    directions.save(
        direction, directions.Direction("mean_difference", [1], vector.size), {1: vector}
    )
    steering = {"steer_direction": str(direction), "steer_layers": 1, "steer_strength": 2.0}
    out = tmp_path / "run"
    done = agora.run(
        Path(__file__).resolve().parents[2] / "runs" / "fairmind.toml",
        out=out,
        ticks=1,
        overrides=local_run(folder, **{"world.agents": 2, "inference.params": steering}),
    )
    assert done.summary.errors == 0
    frames = agora.load_run(out)
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    decisions = [line for line in lines if line["kind"] == "decision"]
    assert len(decisions) == 2 and all(d["params"] == steering for d in decisions)
    for decision in decisions:  # played, or invalid with its reason
        assert decision["valid"] or decision["invalid_reason"]
    tick = frames.of("tick").row(0, named=True)
    metrics = tick["metrics"]
    # Each agent's round is played or missed, never dropped: the two add up to the agents.
    assert frames.of("fairmind_trial").height + metrics["missed"] == 2
    assert metrics["played"] == frames.of("fairmind_trial").height

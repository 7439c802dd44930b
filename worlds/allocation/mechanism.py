"""The altruism-mechanism study on a local white-box model (``agora mechanism``, ``make
mechanism``): a direction from the Dictator Game's minimal pairs, steering along it at a few
layers over a range of strengths, the same vector in the sibling games, and activation
patching from the generous prompt into the selfish one.

1. **Prompts**: the exact requests the agents send, recorded by running the allocation world
   with a client that only records (``Recorder``), one generous/selfish pair per endowment
   in ``PAIR_ENDOWMENTS``: the two prompts of a pair differ only in the stance sentence.
2. **Direction**: per layer, the mean over pairs of the generous minus the selfish residual
   stream at the last prompt token (``directions.mean_difference``), saved with provenance;
   or a given direction file (``Plan.direction``: an SAE feature's decoder row made by
   ``agora direction``, say), steered at its own layers.
3. **Steering sweep**: neutral-stance Dictator runs (``samples`` answers each, sampled at the
   run's temperature from the scored values) for every layer × strength, through the engine
   and the ``local`` backend, steering as request parameters (``inference.params``).
4. **Transfer**: the same vector, at the transfer layer (chosen before any result: the middle
   one of ``layers``), in the ultimatum, trust (both roles), public-goods and third-party
   punishment games.
5. **Patching**: for each layer, the selfish prompt's expected allocation (Σ v·P(v), from the
   scores) with the generous prompt's residual stream copied in at the positions the two
   share at their end (every token after the last one where they differ: the stance
   sentences' common ending, the question and after), against the unpatched selfish and
   generous.

Every run is an ordinary run directory under ``OUT/runs`` (replayable, reportable); the
report (``OUT/report.md``) is written from them, with the Spearman correlation of allocation
with strength per layer and the valid-answer rate per strength. Nothing is tuned to the
result: the layers, strengths and prompts are fixed before anything runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from agora.engine.inference.local import directions
from agora.engine.inference.local.client import LocalClient
from agora.engine.inference.local.model import LocalModel
from agora.engine.inference.local.options import LocalOptions
from agora.engine.inference.local.patching import capture, patched
from agora.engine.inference.params import ParamsClient
from agora.engine.records import Completion, EndpointReport, Request
from agora.engine.run_state import state_of

PAIR_ENDOWMENTS = (20, 40, 60, 80, 100, 120, 150, 200)
TRANSFER_GAMES = ("ultimatum", "trust", "trust_return", "public_goods", "third_party_punishment")


@dataclass(frozen=True)
class Plan:
    config: Path
    model_path: Path
    out: Path
    model_name: str = "local-model"
    layers: tuple[int, ...] = ()  # empty: a quarter, half and three quarters of the way
    strengths: tuple[float, ...] = (-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)
    samples: int = 20
    transfer_strength: float = 4.0
    seed: int = 1
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    temperature: float = 1.0
    # A direction file to steer along (an SAE feature from ``agora direction``, or any other)
    # instead of the minimal pairs' mean difference; None: the mean difference.
    direction: Path | None = None
    # "score": every allowed amount scored, no answer invalid; "generate": the model writes
    # its answer as free text, parsed like any server's (and may be invalid).
    answer: Literal["score", "generate"] = "score"
    extra: Mapping[str, Any] = field(default_factory=dict)


class Recorder:
    """A client that records the requests and answers zero: the agents' exact prompts."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    @property
    def backend(self) -> str:
        return "recorder"

    @property
    def model(self) -> str:
        return "recorder"

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        return Completion('{"amount": 0}', 0, 0, 0.0, "recorder")

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def reports(self) -> list[EndpointReport]:
        return []

    async def aclose(self) -> None:
        return None


def _run(config: Path, out: Path, overrides: Mapping[str, Any], client: Any) -> Any:
    import agora

    return asyncio.run(agora.arun(config, out=out, overrides=dict(overrides), client=client))


def record_pairs(plan: Plan) -> list[tuple[list[dict[str, str]], list[dict[str, str]]]]:
    """(generous, selfish) messages per endowment, as the agents send them."""
    pairs = []
    # Recordings, not results: made afresh each time (cheap, no model involved).
    shutil.rmtree(plan.out / "prompts", ignore_errors=True)
    for endowment in PAIR_ENDOWMENTS:
        recorder = Recorder()
        _run(
            plan.config,
            plan.out / "prompts" / f"endowment{endowment}",
            {
                "world.game": "dictator",
                "world.stances": ["generous", "selfish"],
                "world.samples": 1,
                "world.endowment": endowment,
                "run.ticks": 1,
                "run.seed": plan.seed,
            },
            recorder,
        )
        by_agent = {
            r.agent_id: [msgspec.structs.asdict(m) for m in r.messages] for r in recorder.requests
        }
        pairs.append((by_agent[0], by_agent[1]))  # agent 0 generous, 1 selfish
    return pairs


def _expected(scores: Any, low: int) -> float:
    values = np.asarray(scores, dtype=float)
    weights = np.exp(values - values.max())
    weights /= weights.sum()
    return float(np.dot(weights, np.arange(low, low + len(values))))


def _shared_tail(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def run_study(plan: Plan, say: Any = print) -> Path:
    started = time.perf_counter()
    if plan.direction is not None:  # a bad file is found before minutes of loading
        check_direction(plan.direction, plan.layers)
    plan.out.mkdir(parents=True, exist_ok=True)
    say(f"agora mechanism: loading {plan.model_path}")
    model = LocalModel.load(plan.model_path, plan.device, plan.dtype)
    pairs = record_pairs(plan)
    if plan.direction is None:
        by_depth = sorted({round(model.layers * f) for f in (0.25, 0.5, 0.75)})
        layers = plan.layers or tuple(layer for layer in by_depth if layer < model.layers)
    else:
        given, vectors = check_direction(plan.direction, plan.layers)
        if given.hidden_size != model.hidden_size:
            raise ValueError(
                f"--direction {plan.direction}: its vectors have {given.hidden_size} values, "
                f"the model's residual stream {model.hidden_size}"
            )
        if given.model_sha256 and given.model_sha256 != model.sha256:
            raise ValueError(
                f"--direction {plan.direction}: it was made for other weights (SHA-256 "
                f"{given.model_sha256[:12]}…, this model's {model.sha256[:12]}…)"
            )
        layers = plan.layers or default_layers(sorted(vectors))
    bad = [layer for layer in layers if not 0 <= layer < model.layers]
    if bad:
        raise ValueError(f"--layers {bad}: the model has layers 0 … {model.layers - 1}")
    say(f"agora mechanism: {model.layers} layers, hidden {model.hidden_size}; steering at {layers}")

    if plan.direction is None:
        direction_path = plan.out / "direction.npz"
        given, vectors = mean_difference_direction(model, pairs, direction_path)
        say(f"agora mechanism: direction from {len(pairs)} minimal pairs -> {direction_path}")
    else:
        direction_path = plan.direction
        say(f"agora mechanism: steering along {direction_path} ({given.method})")
    # Of the layers' vectors (not the file, which also holds when it was made).
    direction_sha = hashlib.sha256(
        b"".join(
            layer.to_bytes(4, "little") + np.asarray(vectors[layer], dtype=np.float32).tobytes()
            for layer in sorted(vectors)
        )
    ).hexdigest()
    config_sha = _config_digest(plan.config)

    local = LocalClient(
        LocalOptions(
            model_path=str(plan.model_path),
            device=plan.device,
            dtype=plan.dtype,
            answer=plan.answer,
        ),
        plan.model_name,
    )
    local._model = model  # one load for every run of the study

    def steered_run(
        name: str, overrides: Mapping[str, Any], layer: int | None, strength: float
    ) -> Path:
        params: dict[str, Any] = {}
        if strength:
            params = {
                "steer_direction": str(direction_path),
                "steer_layers": layer,
                "steer_strength": strength,
            }
        out = plan.out / "runs" / name
        settings = {
            "inference.backend": "local",
            "inference.model": plan.model_name,
            "inference.temperature": plan.temperature,
            "inference.local.model_path": str(plan.model_path),
            "inference.local.device": plan.device,
            "inference.local.dtype": plan.dtype,
            "inference.local.answer": plan.answer,
            "inference.params": params,
            "world.samples": plan.samples,
            "run.seed": plan.seed,
            **plan.extra,
            **overrides,
        }
        # What the cell's answers depend on: a finished cell of the same is kept, any other
        # (another model, direction, config or its texts, samples, seed, answer mode; a run
        # that stopped) is made again.
        made_of = msgspec.json.encode(
            {
                "settings": settings,
                "model": model.sha256,
                "direction": direction_sha,
                "config": config_sha,
            }
        ).decode()
        stamp = out / "cell.json"
        if stamp.exists() and stamp.read_text() == made_of and state_of(out).state == "completed":
            say(f"agora mechanism: {name}: kept from an earlier run")
            return out
        shutil.rmtree(out, ignore_errors=True)
        _run(plan.config, out, settings, ParamsClient(local, params) if params else local)
        stamp.write_text(made_of)
        say(f"agora mechanism: {name} done")
        return out

    steered_run("stances", {"world.stances": ["generous", "selfish", "neutral"]}, None, 0.0)
    neutral = {"world.stances": ["neutral"], "world.game": "dictator"}
    steered_run("dictator/strength0", neutral, None, 0.0)
    for layer in layers:
        for strength in plan.strengths:
            if strength:
                steered_run(f"dictator/L{layer}/strength{strength:+g}", neutral, layer, strength)
    transfer_layer = layers[len(layers) // 2]
    for game in TRANSFER_GAMES:
        for strength in (-plan.transfer_strength, 0.0, plan.transfer_strength):
            overrides = {"world.stances": ["neutral"], "world.game": game}
            steered_run(
                f"transfer/{game}/strength{strength:+g}", overrides, transfer_layer, strength
            )

    patching = patching_effects(model, pairs[PAIR_ENDOWMENTS.index(100)], layers)
    facts = {
        "model": model.path,
        "model_name": plan.model_name,
        "sha256": model.sha256,
        "model_layers": model.layers,
        "hidden_size": model.hidden_size,
        "layers": list(layers),
        "transfer_layer": transfer_layer,
        "strengths": list(plan.strengths),
        "transfer_strength": plan.transfer_strength,
        "transfer_games": list(TRANSFER_GAMES),
        "samples": plan.samples,
        "temperature": plan.temperature,
        "pairs": len(pairs),
        "answer": plan.answer,
        "direction": {
            "given": plan.direction is not None,
            "file": str(direction_path),
            "method": given.method,
            "source": given.source,
            "feature": given.feature,
            "model_sha256": given.model_sha256,
            "sha256": direction_sha,
        },
        "direction_norms": {str(layer): float(np.linalg.norm(vectors[layer])) for layer in layers},
        "patching": patching,
        "load_s": round(model.load_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (plan.out / "study.json").write_bytes(msgspec.json.format(msgspec.json.encode(facts)))
    from agora.worlds.allocation.mechanism_report import write_report

    return write_report(plan.out)


def _config_digest(config: Path) -> str:
    """The run config's bytes and the games' and stances' texts it plays."""
    from agora.worlds.allocation.texts import load_texts

    data = config.read_bytes()
    world = tomllib.loads(data.decode("utf-8")).get("world", {})
    texts = load_texts(world.get("games"), world.get("stances_file"))
    return hashlib.sha256(data + b"\0" + texts.digest.encode()).hexdigest()


def check_direction(
    path: Path, layers: Sequence[int]
) -> tuple[directions.Direction, directions.Vectors]:
    """A given direction file and the layers to steer at (ValueError naming what is wrong),
    checked before the model loads."""
    given, vectors = directions.load(path)
    missing = [layer for layer in layers if layer not in vectors]
    if missing:
        raise ValueError(f"--layers {missing}: {path} has vectors for layers {sorted(vectors)}")
    return given, vectors


def default_layers(available: Sequence[int]) -> tuple[int, ...]:
    """A quarter, half and three quarters of the way through ``available`` (all of them when
    there are three or fewer)."""
    ordered = sorted(available)
    if len(ordered) <= 3:
        return tuple(ordered)
    return tuple(sorted({ordered[round((len(ordered) - 1) * f)] for f in (0.25, 0.5, 0.75)}))


def mean_difference_direction(
    model: LocalModel,
    pairs: Sequence[tuple[list[dict[str, str]], list[dict[str, str]]]],
    path: Path,
) -> tuple[directions.Direction, directions.Vectors]:
    """Per layer, mean(generous) − mean(selfish) at the last prompt token, saved to ``path``
    with its provenance."""
    generous = [model.render(g) for g, _ in pairs]
    selfish = [model.render(s) for _, s in pairs]
    all_layers = list(range(model.layers))
    pos = directions.last_token_activations(model.model, model.encode(generous), all_layers)
    neg = directions.last_token_activations(model.model, model.encode(selfish), all_layers)
    vectors = {layer: directions.mean_difference(pos[layer], neg[layer]) for layer in all_layers}
    meta = directions.Direction(
        "mean_difference",
        all_layers,
        model.hidden_size,
        model=model.path,
        model_sha256=model.sha256,
        positive=[g[-1]["content"] for g, _ in pairs],
        negative=[s[-1]["content"] for _, s in pairs],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    directions.save(path, meta, vectors)
    return meta, vectors


def patching_effects(
    model: LocalModel,
    pair: tuple[list[dict[str, str]], list[dict[str, str]]],
    layers: Sequence[int],
) -> list[dict[str, Any]]:
    """Per layer: the selfish prompt's expected allocation, unpatched and with the generous
    prompt's residual stream at their shared end positions, and the generous one's."""
    import torch

    field, low, high = "amount", 0, 100
    donor_ids = model.scored_prefix(model.render(pair[0]), field, low, high)
    receiver_ids = model.scored_prefix(model.render(pair[1]), field, low, high)
    tail = _shared_tail(donor_ids, receiver_ids)
    donor_inputs = {"input_ids": torch.tensor([donor_ids], device=model.device)}
    donor_scores, _ = model.score_integers(model.render(pair[0]), field, low, high)
    receiver_scores, _ = model.score_integers(model.render(pair[1]), field, low, high)
    generous, selfish = _expected(donor_scores, low), _expected(receiver_scores, low)
    donor_states = capture(model.model, donor_inputs, list(layers))
    positions = list(range(-tail, 0))
    rows = []
    for layer in layers:

        def patch(layer: int = layer) -> Any:
            return patched(model.model, layer, donor_states[layer], positions)

        scores, _ = model.score_integers(model.render(pair[1]), field, low, high, patch)
        value = _expected(scores, low)
        gap = generous - selfish
        rows.append(
            {
                "layer": layer,
                "positions": tail,
                "selfish": selfish,
                "generous": generous,
                "patched": value,
                "restored": (value - selfish) / gap if abs(gap) > 1e-9 else math.nan,
            }
        )
    return rows

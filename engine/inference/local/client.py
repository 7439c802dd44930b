"""The ``local`` backend's transport: requests answered by a model in this process.

Requests queue up and are answered a batch at a time in a worker thread (the event loop keeps
running). A request whose answer schema is one bounded whole number (``{"amount": 0 … 100}``,
other fields optional) is answered by scoring every allowed value (``model.score_integers``):
greedy at temperature 0, else sampled from the values' probabilities (softmax of the log-
probabilities over the temperature) with the request's seed; the answer is the JSON object
with that value, so it is never invalid. Any other request is generated as free text.

Steering is a request parameter (``inference.params`` or the request's own), so it is in the
cache key and in every decision record: ``steer_direction`` (a direction file,
``directions.py``), ``steer_layers`` (a block index, or several as "10,15"; default: every
layer the file has) and
``steer_strength`` (× the stored vector; 0: none).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from agora.engine.config import ConfigError
from agora.engine.inference.errors import InferenceError
from agora.engine.inference.local.directions import DirectionError, Vectors, load
from agora.engine.inference.local.model import LocalModel
from agora.engine.inference.local.options import LocalOptions
from agora.engine.inference.local.steering import steered
from agora.engine.records import Completion, EndpointReport, Request

STEER_KEYS = ("steer_direction", "steer_layers", "steer_strength")


class Steering(msgspec.Struct, frozen=True):
    direction: str = ""
    layers: tuple[int, ...] = ()
    strength: float = 0.0


def steering_of(params: Mapping[str, Any]) -> Steering:
    """The request's steering, from its params (``ValueError`` naming a bad one)."""
    direction = params.get("steer_direction", "")
    strength = params.get("steer_strength", 0.0)
    layers = params.get("steer_layers", ())
    if not isinstance(direction, str):
        raise ValueError("steer_direction: expected the path of a direction file")
    if isinstance(strength, bool) or not isinstance(strength, int | float):
        raise ValueError(f"steer_strength: expected a number, got {strength!r}")
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    elif isinstance(layers, str):  # inference.params holds scalars: "10,15" names two
        try:
            layers = [int(part) for part in layers.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"steer_layers: {layers!r} is not block indices like 10,15") from None
    if not isinstance(layers, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in layers
    ):
        raise ValueError(f"steer_layers: expected a list of block indices, got {layers!r}")
    if strength and not direction:
        raise ValueError("steer_strength is set but steer_direction is not; name the file")
    return Steering(direction, tuple(layers), float(strength))


def integer_answer(schema: Mapping[str, Any] | None, most: int) -> tuple[str, int, int] | None:
    """(field, low, high) when the schema's one required field is a bounded whole number with
    at most ``most`` values; None otherwise."""
    if not schema or schema.get("type") != "object":
        return None
    required = list(schema.get("required", []))
    properties = schema.get("properties", {})
    if len(required) != 1 or not isinstance(properties, dict):
        return None
    field = properties.get(required[0], {})
    if not isinstance(field, dict) or field.get("type") != "integer":
        return None
    low = field.get("minimum", field.get("exclusiveMinimum"))
    high = field.get("maximum", field.get("exclusiveMaximum"))
    if not isinstance(low, int) or not isinstance(high, int):
        return None
    low += 1 if "minimum" not in field else 0
    high -= 1 if "maximum" not in field else 0
    if not 0 < high - low + 1 <= most:
        return None
    return required[0], low, high


class LocalClient:
    def __init__(self, options: LocalOptions, model_name: str) -> None:
        self.options = options
        self._model_name = model_name
        self._model: LocalModel | None = None
        self._directions: dict[str, Vectors] = {}
        self._queue: list[tuple[Request, asyncio.Future[Completion]]] = []
        self._score_memo: dict[tuple[str, str, int, int, str], tuple[Any, int]] = {}
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self.answered = 0

    @property
    def backend(self) -> str:
        return "local"

    @property
    def model(self) -> str:
        return self._model_name

    def loaded(self) -> LocalModel:
        if self._model is None:
            try:
                self._model = LocalModel.load(
                    self.options.model_path, self.options.device, self.options.dtype
                )
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ConfigError(
                    f"inference.local.model_path: {self.options.model_path} could not be "
                    f"loaded as a model ({type(exc).__name__}: {first}); point it at a Hugging "
                    "Face model folder or a .gguf file"
                ) from None
        return self._model

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        model = await asyncio.to_thread(self.loaded)
        facts = {
            "path": model.path,
            "sha256": model.sha256,
            "layers": model.layers,
            "hidden_size": model.hidden_size,
            "device": model.device,
            "dtype": self.options.dtype,
            "load_s": round(model.load_s, 2),
            "integer_answers": self.options.answer,
        }
        recorded = known.get("local") if isinstance(known, Mapping) else None
        if isinstance(recorded, Mapping) and recorded.get("sha256") not in (None, model.sha256):
            raise InferenceError(
                f"{model.path}: these weights (sha256 {model.sha256[:12]}…) are not the ones "
                f"the run was made with ({str(recorded.get('sha256'))[:12]}…)",
                retryable=False,
                requests=0,
            )
        return {"local": facts}

    def reports(self) -> list[EndpointReport]:
        return []

    async def aclose(self) -> None:
        # The weights stay: a caller may hand the same client to its next run (a study of
        # many runs loads them once); they go with the client.
        return None

    async def complete(self, request: Request) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if not self._draining:
            self._draining = True
            # Kept: a task nobody references may be collected before it ends.
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.options.batch_size]
                del self._queue[: self.options.batch_size]
                try:
                    answers = await asyncio.to_thread(self._answer, [r for r, _ in batch])
                except InferenceError as exc:
                    answers = [exc] * len(batch)
                except Exception as exc:  # the model's own failure, kept as the reason
                    error = InferenceError(f"the local model failed: {exc}", retryable=False)
                    answers = [error] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._draining = False

    # ---- in the worker thread ------------------------------------------------------------

    def _vectors(self, steering: Steering) -> dict[int, Any]:
        import torch

        if not steering.strength:
            return {}
        if steering.direction not in self._directions:
            try:
                meta, vectors = load(Path(steering.direction))
            except DirectionError as exc:
                raise InferenceError(str(exc), retryable=False) from None
            model = self.loaded()
            if meta.hidden_size != model.hidden_size:
                raise InferenceError(
                    f"{steering.direction}: its vectors have {meta.hidden_size} values, the "
                    f"model's residual stream {model.hidden_size}",
                    retryable=False,
                )
            self._directions[steering.direction] = vectors
        vectors = self._directions[steering.direction]
        layers = steering.layers or tuple(sorted(vectors))
        missing = [layer for layer in layers if layer not in vectors]
        if missing:
            raise InferenceError(
                f"{steering.direction}: no vector for layers {missing} (it has {sorted(vectors)})",
                retryable=False,
            )
        model = self.loaded()
        return {
            layer: torch.tensor(vectors[layer], device=model.device, dtype=model.model.dtype)
            for layer in layers
        }

    def _answer(self, requests: Sequence[Request]) -> list[Completion | InferenceError]:
        model = self.loaded()
        groups: dict[Steering, list[int]] = {}
        answers: list[Completion | InferenceError] = [
            InferenceError("not answered", retryable=False)
        ] * len(requests)
        for k, request in enumerate(requests):
            try:
                groups.setdefault(steering_of(request.params), []).append(k)
            except ValueError as exc:
                answers[k] = InferenceError(f"inference.params: {exc}", retryable=False)
        for steering, members in groups.items():
            try:
                vectors = self._vectors(steering)
            except InferenceError as exc:
                for k in members:
                    answers[k] = exc
                continue
            with steered(model.model, vectors, steering.strength):
                completions = self._run(model, [requests[k] for k in members])
            for k, completion in zip(members, completions, strict=True):
                answers[k] = completion
        self.answered += len(requests)
        return answers

    def _scores(
        self, model: LocalModel, prompt: str, field: str, low: int, high: int, request: Request
    ) -> tuple[Any, int]:
        """The values' scores for this prompt and steering, computed once: many agents (or
        ticks) with the same prompt differ only in their seed, which picks from them."""
        key = (prompt, field, low, high, _steering_key(request))
        if key not in self._score_memo:
            if len(self._score_memo) >= SCORES_KEPT:
                self._score_memo.pop(next(iter(self._score_memo)))
            self._score_memo[key] = model.score_integers(prompt, field, low, high)
        return self._score_memo[key]

    def _run(self, model: LocalModel, requests: Sequence[Request]) -> list[Completion]:
        started = time.perf_counter()
        prompts = [model.render([msgspec.structs.asdict(m) for m in r.messages]) for r in requests]
        done: dict[int, tuple[str, int, int]] = {}
        free: list[int] = []
        for k, request in enumerate(requests):
            shape = (
                integer_answer(request.answer_schema, self.options.max_choices)
                if self.options.answer == "score"
                else None
            )
            if shape is None:
                free.append(k)
                continue
            field, low, high = shape
            scores, used = self._scores(model, prompts[k], field, low, high, request)
            value = low + _choose(scores, request.temperature, request.seed)
            done[k] = (json.dumps({field: value}), used, model.token_count(f" {value}}}"))
        # Free text in groups of one sampling (temperature, token limit): an answer never
        # depends on what shared its batch.
        groups: dict[tuple[float, int], list[int]] = {}
        for k in free:
            groups.setdefault((requests[k].temperature, requests[k].max_tokens), []).append(k)
        for (temperature, limit), members in groups.items():
            texts = model.generate(
                [prompts[k] for k in members],
                limit,
                temperature,
                [requests[k].seed for k in members],
            )
            done.update(zip(members, texts, strict=True))
        latency = (time.perf_counter() - started) / max(len(requests), 1)
        return [
            Completion(done[k][0], done[k][1], done[k][2], latency, self._model_name)
            for k in range(len(requests))
        ]


SCORES_KEPT = 256  # prompts whose value scores are kept (same prompt, another seed: no pass)


def _steering_key(request: Request) -> str:
    return json.dumps({k: request.params.get(k) for k in STEER_KEYS}, sort_keys=True)


def _choose(scores: Any, temperature: float, seed: int) -> int:
    """The index of the value answered: the most likely one at temperature 0, else a draw
    from softmax(scores / temperature) with the request's own seed."""
    values = np.asarray(scores, dtype=np.float64)
    if temperature <= 0:
        return int(np.argmax(values))
    logits = values / temperature
    weights = np.exp(logits - logits.max())
    rng = np.random.default_rng(seed % (2**63))
    return int(rng.choice(len(values), p=weights / weights.sum()))

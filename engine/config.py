"""Run configuration: a TOML file, overridden by flags, checked field by field.

Every mistake becomes one ``ConfigError`` line naming the field and what it accepts, so the CLI
can print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

T = TypeVar("T")

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]

# The backends agora ships; others are plug-ins (entry points in the ``agora.backends`` group,
# or ``module:attribute`` names), each checking its own ``[inference.<name>]`` table.
BACKENDS = ("offline", "openai-http", "litellm")

ParamValue = str | int | float | bool


class ConfigError(ValueError):
    """A config mistake, phrased as one line for the user."""


class RunSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str = "run"
    seed: NonNegative = 0
    ticks: Positive = 20
    out: str | None = None
    # "auto": worlds whose agents are independent run barrier-free (each agent goes on to its
    # next turn as soon as its answer is in), others in lockstep. "lockstep" forces tick
    # barriers on any world (to compare, or to match a protocol that needs them).
    scheduler: Literal["auto", "lockstep"] = "auto"
    # A run in which more than this share of the decisions ended in a provider error (no answer
    # after every retry) ends "failed", exit 1; it also stops early, at the end of a tick in
    # which every decision failed while the share is over it (a dead server). 1 never fails.
    max_error_rate: Probability = 0.05


class OfflineSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Knobs of the offline backend that are not behaviour: faults and latency to exercise runs."""

    invalid_rate: Probability = 0.0
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    latency_sigma: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0


class InferenceSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Any registered backend plug-in (see ``agora.engine.inference.backends``).
    backend: str = "offline"
    model: str = "offline"
    # Base URLs of OpenAI-compatible servers, e.g. "http://127.0.0.1:8000/v1".
    endpoints: list[str] = msgspec.field(default_factory=list)
    # The NAME of the environment variable holding the API key; the key itself is never
    # written in a config, a log or an error message.
    api_key_env: str | None = None
    # The most decisions in flight; each endpoint's own limit is learnt below it (adaptive),
    # starting from initial_concurrency, or is this number from the start (not adaptive).
    concurrency: Positive = 64
    adaptive_concurrency: bool = True
    initial_concurrency: Positive = 4
    # Provider quotas, shared by all agents of the run; unset means no limit.
    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None
    max_reasks: NonNegative = 2
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.7
    # No model writes more than this in one answer; a larger value is a typo, not a wish.
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 512
    # How long a request may wait while its server answers nothing else. A server that is
    # busy (it answers other requests, or a liveness check) is waited for, up to
    # request_deadline_s, instead of being sent the same request again.
    timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 60.0
    request_deadline_s: Annotated[float, msgspec.Meta(gt=0.0)] = 600.0
    max_attempts: Positive = 6
    # An endpoint failing this many times in a row is taken out for a cooldown, then probed.
    eject_after: Positive = 3
    eject_cooldown_s: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    backoff_base_s: Annotated[float, msgspec.Meta(ge=0.0)] = 0.5
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30.0
    # Ask for the answer's JSON Schema (constrained decoding), falling back per endpoint to a
    # JSON object, then to no format, as each server takes; json_mode = false asks for none.
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    json_mode: bool = True
    # Micro-batching (openai-http): above 1, prompts are gathered for up to batch_max_wait_ms
    # and sent as one /v1/completions request, rendered with prompt_template.
    batch_max_size: Positive = 1
    batch_max_wait_ms: Annotated[float, msgspec.Meta(ge=0.0)] = 5.0
    prompt_template: Literal["chatml", "plain"] = "chatml"
    cache: bool = True
    cache_dir: str = "runs/cache"
    # Prices in USD per million tokens; unset, the litellm backend uses litellm's price list.
    usd_per_mtok_in: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    usd_per_mtok_out: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    # The run stops cleanly at the end of the tick in which it passes a budget.
    budget_tokens: Positive | None = None
    budget_usd: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    offline: OfflineSection = msgspec.field(default_factory=OfflineSection)
    # Put on every request that carries none (e.g. a steering strength), for a backend plug-in
    # that reads them; part of the cache key. The built-in transports send them nowhere.
    params: dict[str, ParamValue] = msgspec.field(default_factory=dict)
    # The backend's own options, checked by its plug-in: written ``[inference.<backend>]``,
    # kept here by ``load_run_config`` (and so in a run header's resolved config). None for
    # the offline backend, whose options are ``offline`` above.
    options: Any = None


class RunConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The engine's sections; ``world``, ``agents`` and each policy are checked by their plugin."""

    world: dict[str, Any]
    run: RunSection = msgspec.field(default_factory=RunSection)
    inference: InferenceSection = msgspec.field(default_factory=InferenceSection)
    agents: dict[str, Any] = msgspec.field(default_factory=lambda: {"kind": "llm"})
    # Checked section by section in the runner, so an error names policies.<name>.
    policies: dict[str, Any] = msgspec.field(default_factory=dict)


# Flags that set a config field, by the dotted path they set.
FLAG_FIELDS: dict[str, str] = {
    "ticks": "run.ticks",
    "seed": "run.seed",
    "out": "run.out",
    "agents": "world.agents",
    "backend": "inference.backend",
    "model": "inference.model",
    "concurrency": "inference.concurrency",
    "endpoint": "inference.endpoints",
}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (TOML must be UTF-8)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def parse_assignment(text: str) -> tuple[str, Any]:
    """``a.b=3`` → ("a.b", 3); the value is read as TOML, else taken as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise ConfigError(f"--set {text!r}: expected FIELD.PATH=VALUE, e.g. world.m=0.4")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted-path fields in a copy of the raw config (before checking, so errors name them)."""
    result: dict[str, Any] = _deep_copy(raw)
    for path, value in overrides.items():
        node = result
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{path}: cannot set a field inside {part!r}, which is a value")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def check(raw: Any, type_: type[T], where: str = "") -> T:
    """Convert raw TOML data to ``type_``, or raise a one-line ``ConfigError``."""
    try:
        return msgspec.convert(raw, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(explain(exc, type_, where)) from None


def load_run_config(raw: dict[str, Any], environ: Mapping[str, str]) -> RunConfig:
    raw, backend_options = _backend_options(raw)
    config = check(raw, RunConfig)
    if backend_options is not None:
        config = msgspec.structs.replace(
            config, inference=msgspec.structs.replace(config.inference, options=backend_options)
        )
    if "kind" not in config.world:
        raise ConfigError(
            'world.kind: missing; name the world to run, e.g. kind = "schelling_city"'
        )
    inference = config.inference
    if inference.backend == "openai-http" and not inference.endpoints:
        raise ConfigError(
            "inference.endpoints: openai-http needs a server URL, "
            "e.g. --endpoint http://127.0.0.1:8000/v1"
        )
    if inference.backend != "offline":
        for url in inference.endpoints:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ConfigError(f"inference.endpoints: {url!r} is not an http(s) URL")
    if inference.batch_max_size > 1 and inference.backend != "openai-http":
        raise ConfigError(
            "inference.batch_max_size: micro-batching is for the openai-http backend; set it to 1"
        )
    if inference.backend != "offline" and inference.model == "offline":
        raise ConfigError(
            f"inference.model: name the model {inference.backend} should ask, e.g. --model NAME"
        )
    if inference.request_deadline_s < inference.timeout_s:
        raise ConfigError(
            f"inference.request_deadline_s: {inference.request_deadline_s:g} is shorter than "
            f"inference.timeout_s ({inference.timeout_s:g}); make it at least as long"
        )
    if inference.api_key_env is not None and not environ.get(inference.api_key_env):
        raise ConfigError(
            f"inference.api_key_env: the environment variable {inference.api_key_env} is not set"
        )
    return config


def _backend_options(raw: Any) -> tuple[Any, Any]:
    """Take ``[inference.<backend>]`` out of the raw config and check it with the backend's
    plug-in; the raw config is left for ``check`` to name anything else that is wrong.

    A resolved config (a run header) keeps the checked options as ``inference.options``, a field
    every reader of an inference section takes, and reads back from there."""
    if not isinstance(raw, dict) or not isinstance(raw.get("inference", {}), dict):
        return raw, None
    inference = dict(raw.get("inference", {}))
    name = inference.get("backend", "offline")
    if not isinstance(name, str):
        return raw, None
    plugin = load_backend(name)
    if name == "offline":
        # Its options are the offline section, a field of its own; "options" stays empty.
        if inference.get("options") not in (None, {}):
            raise ConfigError(
                "inference.options: the offline backend's options go in [inference.offline]"
            )
        check(inference.get("offline", {}), plugin.config_type, "inference.offline")
        inference["options"] = None
        return {**raw, "inference": inference}, None
    if name in InferenceSection.__struct_fields__:
        raise ConfigError(f"inference.backend: {name!r} is an inference field, not a backend")
    table = inference.pop(name, None)
    stored = inference.pop("options", None)
    if table is not None and stored not in (None, {}, table):
        raise ConfigError(f"inference.options: give {name}'s options once, in [inference.{name}]")
    options = check(
        table if table is not None else stored or {}, plugin.config_type, f"inference.{name}"
    )
    return {**raw, "inference": inference}, options


def load_backend(name: str, where: str = "inference.backend") -> Any:
    """The backend plug-in named ``name``, or a one-line ``ConfigError`` naming the choices."""
    from agora.engine.plugins import available, load_plugin  # plugins imports this module

    if ":" not in name and name not in available("backend"):
        choices = ", ".join(available("backend")) or "none installed"
        raise ConfigError(
            f"{where}: invalid enum value {name!r}; allowed: {choices} (or a plug-in's module:attr)"
        )
    return load_plugin("backend", name, where)


# ---- turning msgspec's messages into one line a user can act on ---------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def explain(exc: msgspec.ValidationError, type_: Any, where: str) -> str:
    match = _AT.match(str(exc))
    assert match is not None
    message, path = match["msg"], match["path"] or ""
    steps = [s for s in re.split(r"\.|\[(\d+)\]", path) if s]
    unknown = re.match(r"Object contains unknown field `(?P<f>[^`]+)`", message)
    missing = re.match(r"Object missing required field `(?P<f>[^`]+)`", message)
    found = unknown or missing
    field_name = found["f"] if found else None
    dotted = ".".join(p for p in [where, *steps, field_name or ""] if p)
    node = _type_at(type_, steps)
    if unknown:
        allowed = _field_names(node)
        hint = f"allowed: {', '.join(allowed)}" if allowed else "no fields are allowed here"
        return f"{dotted}: unknown field ({hint})"
    if missing:
        return f"{dotted}: missing; this field is required"
    leaf = _type_at(type_, steps)
    choices = _literal_choices(leaf)
    text = message[0].lower() + message[1:]
    if choices:
        return f"{dotted}: {text}; allowed: {', '.join(map(str, choices))}"
    return f"{dotted or '(top level)'}: {text}"


def _type_at(type_: Any, steps: list[str]) -> Any:
    info: Any = msgspec.inspect.type_info(type_)
    for step in steps:
        info = _unwrap(info)
        if isinstance(info, msgspec.inspect.StructType):
            found = next((f for f in info.fields if f.encode_name == step), None)
            if found is None:
                return None
            info = found.type
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.TupleType)):
            info = getattr(info, "item_type", None)
        else:
            return None
    return _unwrap(info)


def _unwrap(info: Any) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        non_none = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(non_none) == 1:
            return non_none[0]
    return info


def _field_names(info: Any) -> list[str]:
    if isinstance(info, msgspec.inspect.StructType):
        return [f.encode_name for f in info.fields]
    return []


def _literal_choices(info: Any) -> list[Any]:
    if isinstance(info, msgspec.inspect.LiteralType):
        return list(info.values)
    return []


def to_builtins(config: Any) -> Any:
    return msgspec.to_builtins(config)

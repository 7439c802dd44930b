import pytest

from engine.inference.endpoints import EndpointPool
from tests.helpers import CONFIG, of_kind, records, run_cli
from tests.mock_server_fixture import mock_server_process


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_go_to_the_least_busy_endpoint():
    pool = EndpointPool(["http://a/v1", "http://b/v1/"], clock=Clock())
    first, second, third = pool.acquire(), pool.acquire(), pool.acquire()
    assert {first, second} == {0, 1} and third == 0
    pool.release(first, healthy=True)
    pool.release(third, healthy=True)
    assert pool.acquire() == 0
    assert pool.url(1) == "http://b/v1"


def test_a_failing_endpoint_is_taken_out_probed_and_brought_back():
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], eject_after=2, cooldown_s=10, clock=clock)
    # Endpoint 1 fails twice in a row.
    for _ in range(2):
        pool._endpoints[1].in_flight += 1
        pool.release(1, healthy=False)
    assert pool.healthy() == [True, False]
    assert {pool.acquire() for _ in range(5)} == {0}
    clock.now += 10
    assert pool.healthy() == [True, True]
    probe = [pool.acquire() for _ in range(8)]
    assert probe.count(1) == 1, "one probe at a time"
    pool.release(1, healthy=False)  # the probe failed: out again, for twice as long
    clock.now += 10
    assert pool.healthy() == [True, False]
    clock.now += 10
    assert pool.acquire() == 1  # endpoint 0 is busy with the requests above
    pool.release(1, healthy=True)
    assert pool.healthy() == [True, True]


def test_when_every_endpoint_is_out_the_one_due_back_first_is_tried():
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], eject_after=1, cooldown_s=10, clock=clock)
    for index in (0, 1):
        pool._endpoints[index].in_flight += 1
        pool.release(index, healthy=False)
        clock.now += 1
    assert pool.healthy() == [False, False]
    assert pool.acquire() == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openai-http", "litellm"])
def test_a_run_routes_around_a_dead_server_in_the_fleet(tmp_path, backend):
    with (
        mock_server_process("--latency-ms", "2") as good,
        mock_server_process("--rate-drop", "1.0") as dead,
    ):
        result = run_cli(
            "run",
            str(CONFIG),
            "-q",
            "--backend",
            backend,
            "--model",
            "mock",
            "--endpoint",
            dead,
            "--endpoint",
            good,
            "--out",
            str(tmp_path / "run"),
            "--ticks",
            "3",
            "--agents",
            "45",
            "--set",
            "world.cells_per_district=10",
            "--set",
            f'inference.cache_dir="{tmp_path / "cache"}"',
            "--set",
            "inference.backoff_base_s=0.01",
            "--set",
            "inference.eject_cooldown_s=60",
        )
    assert result.returncode == 0, result.stderr
    decisions = of_kind(records(tmp_path / "run" / "log.jsonl"), "decision")
    assert len(decisions) == 135 and all(d["valid"] for d in decisions)
    wasted = sum(d["requests"] for d in decisions) - 135
    assert 3 <= wasted <= 3 + 20, "the dead server gets its few strikes, then no traffic"

import pytest

from agora.engine.inference.endpoints import EndpointPool
from tests.helpers import CONFIG, of_kind, records, run_cli
from tests.mock_server_fixture import mock_server_process
from tests.test_http_runs import health


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(pool: EndpointPool, index: int, times: int = 1) -> None:
    for _ in range(times):
        lease = pool.try_acquire()
        while lease.index != index:  # steer to the endpoint under test
            pool.release(lease, healthy=None)
            pool._endpoints[lease.index].in_flight += 1000
            lease = pool.try_acquire()
        pool.release(lease, healthy=False)
        for endpoint in pool._endpoints:
            endpoint.in_flight %= 1000


def test_requests_go_to_the_least_busy_endpoint():
    pool = EndpointPool(["http://a/v1", "http://b/v1/"], clock=Clock(), adaptive=False)
    first, second, third = pool.try_acquire(), pool.try_acquire(), pool.try_acquire()
    assert {first.index, second.index} == {0, 1} and third.index == 0
    assert second.url == "http://b/v1" or first.url == "http://b/v1"
    pool.release(first, healthy=True)
    pool.release(third, healthy=True)
    assert pool.try_acquire().index == 0


def test_a_failing_endpoint_is_taken_out_probed_and_brought_back():
    clock = Clock()
    pool = EndpointPool(
        ["http://a", "http://b"], eject_after=2, cooldown_s=10, clock=clock, adaptive=False
    )
    fail(pool, 1, times=2)
    assert pool.healthy() == [True, False]
    assert {pool.try_acquire().index for _ in range(5)} == {0}
    clock.now += 10
    leases = [pool.try_acquire() for _ in range(8)]
    probes = [lease for lease in leases if lease.index == 1]
    assert len(probes) == 1 and probes[0].probe, "one probe at a time"
    pool.release(probes[0], healthy=False)  # the probe failed: out again, for twice as long
    clock.now += 10
    assert pool.healthy() == [True, False]
    clock.now += 10
    probe = pool.try_acquire()
    assert probe.index == 1 and probe.probe
    pool.release(probe, healthy=True)
    assert pool.healthy() == [True, True]
    assert not pool.try_acquire().probe


def test_a_late_failure_from_before_the_ejection_does_not_count_again():
    clock = Clock()
    pool = EndpointPool(["http://a"], eject_after=2, cooldown_s=10, clock=clock, adaptive=False)
    early = pool.try_acquire()
    fail(pool, 0, times=2)
    clock.now += 10
    probe = pool.try_acquire()
    pool.release(early, healthy=False)  # sent before the ejection, ends after the cooldown
    assert pool.healthy() == [True]
    pool.release(probe, healthy=True)
    assert pool._endpoints[0].failures == 0 and pool._endpoints[0].cooldown_s == 0


def test_a_cancelled_request_says_nothing_about_health():
    pool = EndpointPool(["http://a", "http://b"], eject_after=1, clock=Clock(), adaptive=False)
    for _ in range(5):
        pool.release(pool.try_acquire(), healthy=None)
    assert pool.healthy() == [True, True]
    assert [e.in_flight for e in pool._endpoints] == [0, 0]


def test_when_every_endpoint_is_out_the_one_due_back_first_is_tried():
    clock = Clock()
    pool = EndpointPool(
        ["http://a", "http://b"], eject_after=1, cooldown_s=10, clock=clock, adaptive=False
    )
    fail(pool, 0)
    clock.now += 1
    fail(pool, 1)
    assert pool.healthy() == [False, False]
    assert pool.try_acquire().index == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openai-http", "litellm"])
def test_a_run_routes_around_a_dead_server_in_the_fleet(tmp_path, backend):
    """No timing in it: the dead server's cooldown (300 s, the longest there is) outlasts any
    run this test lets finish (``run_cli`` gives up after 240 s), so it is never probed back.
    Until it is taken out it can have been sent at most the requests in flight at once
    (``concurrency``, one per decision) plus the ``eject_after - 1`` failures that came back
    before the one that took it out; after, nothing."""
    concurrency, eject_after = 4, 3
    with (
        mock_server_process("--latency-ms", "2") as good,
        mock_server_process("--rate-drop", "1.0") as dead,
    ):
        result = run_cli(
            *("run", str(CONFIG), "-q", "--backend", backend, "--model", "mock"),
            *("--endpoint", dead, "--endpoint", good, "--out", str(tmp_path / "run")),
            *("--ticks", "3", "--agents", "45", "--set", "world.cells_per_district=10"),
            *(
                "--set",
                f'inference.cache_dir="{tmp_path / "cache"}"',
                "--set",
                "inference.backoff_base_s=0.01",
            ),
            *("--concurrency", str(concurrency), "--set", f"inference.eject_after={eject_after}"),
            *("--set", "inference.eject_cooldown_s=300"),
        )
        tried = health(dead)["requests"]
    assert result.returncode == 0, result.stderr
    decisions = of_kind(records(tmp_path / "run" / "log.jsonl"), "decision")
    assert len(decisions) == 135 and all(d["valid"] for d in decisions)
    assert tried >= 1, "the dead server was in the fleet"
    wasted = sum(d["requests"] for d in decisions) - 135
    assert wasted <= eject_after - 1 + concurrency, "its few strikes, then no traffic"

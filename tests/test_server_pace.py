"""Never overload a server: the adaptive limit, waiting in the pool, patience with a busy server,
abandoning a silent one (its connection closed), answer formats probed per endpoint, and
bodies no server should send. No assertion here depends on how fast this machine is: servers
are simulated, or gated by events the test sets; the only clock that matters is a timeout of
0.2 s against a server that never answers, which no load can make come sooner."""

from __future__ import annotations

import asyncio
import heapq
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from agora.engine.inference.concurrency import AdaptiveLimit
from agora.engine.inference.endpoints import EndpointPool
from agora.engine.inference.errors import InferenceError
from agora.engine.inference.formats import chain_from, wire_format
from agora.engine.inference.litellm_client import LiteLLMClient
from agora.engine.inference.openai_http import OpenAIHTTPClient
from agora.engine.inference.redact import error_snippet, redact
from agora.engine.records import Message, Request
from tests.helpers import CONFIG, logged_requests, of_kind, records, run_cli
from tests.mock_server_fixture import mock_server, mock_server_process

SCHEMA = {"type": "object", "properties": {"action": {"enum": ["stay", "move"]}}}


def request(seed: int = 1, schema: dict | None = SCHEMA) -> Request:
    return Request(
        agent_id=1,
        tick=0,
        messages=(Message("system", "rules"), Message("user", "You are resident #1.")),
        seed=seed,
        answer_schema=schema,
    )


# ---- the limit, against simulated servers ---------------------------------------------------


def simulate(slots: int, service_s: float, limit: AdaptiveLimit, answers: int) -> list[int]:
    """A FIFO server with ``slots`` parallel slots, each request taking ``service_s``; the
    client always has more to send. Returns the requests in flight as each answer arrives."""
    free = [0.0] * slots  # when each slot is next free
    pending: list[tuple[float, float]] = []  # (done at, sent at)
    now, in_flight, seen = 0.0, 0, []

    def send() -> None:
        nonlocal in_flight
        while in_flight < limit.allowed:
            start = max(now, heapq.heappop(free))
            heapq.heappush(free, start + service_s)
            heapq.heappush(pending, (start + service_s, now))
            in_flight += 1
            limit.note_in_flight(in_flight)

    send()
    for _ in range(answers):
        done, sent = heapq.heappop(pending)
        now = done
        seen.append(in_flight)
        in_flight -= 1
        limit.on_answer(done - sent)
        send()
    return seen


def simulate_ticks(slots: int, service_s: float, limit: AdaptiveLimit, ticks: int, agents: int):
    """Lockstep ticks: ``agents`` requests a tick, the next tick once all are answered."""
    free = [0.0] * slots
    now = 0.0
    most = []
    for _ in range(ticks):
        waiting, pending, in_flight = agents, [], 0
        while waiting or pending:
            while waiting and in_flight < limit.allowed:
                start = max(now, heapq.heappop(free))
                heapq.heappush(free, start + service_s)
                heapq.heappush(pending, (start + service_s, now))
                waiting -= 1
                in_flight += 1
                limit.note_in_flight(in_flight)
            done, sent = heapq.heappop(pending)
            now = done
            in_flight -= 1
            limit.on_answer(done - sent)
        most.append(limit.allowed)
    return most


def test_a_short_lockstep_run_on_a_one_slot_server_comes_down_at_once():
    # The first window is all queued (four sent at once, answered one after another): its
    # median must not be taken for the server's no-load latency.
    limit = AdaptiveLimit(ceiling=8, initial=4)
    assert simulate_ticks(slots=1, service_s=1.0, limit=limit, ticks=2, agents=8)[-1] <= 2


def test_a_one_slot_server_ends_up_with_about_one_request_in_flight():
    limit = AdaptiveLimit(ceiling=8, initial=4)
    in_flight = simulate(slots=1, service_s=1.0, limit=limit, answers=600)
    settled = in_flight[200:]
    assert max(settled) <= 2
    assert sum(settled) / len(settled) < 1.5, "mostly one, now and then a try at two"


def test_a_batching_server_gets_hundreds_in_flight():
    limit = AdaptiveLimit(ceiling=512, initial=4)
    simulate(slots=256, service_s=1.0, limit=limit, answers=6000)
    assert 200 <= limit.allowed <= 512


def test_the_limit_never_passes_the_ceiling_nor_falls_below_one():
    limit = AdaptiveLimit(ceiling=16, initial=4)
    simulate(slots=1000, service_s=1.0, limit=limit, answers=500)
    assert limit.allowed == 16
    for _ in range(20):
        limit.on_overload()
        limit.on_answer(1.0)
        limit.on_answer(1.0)
        limit.on_answer(1.0)
    assert limit.allowed == 1


def test_one_burst_of_overload_halves_the_limit_once():
    limit = AdaptiveLimit(ceiling=64, initial=32)
    for _ in range(10):
        limit.on_overload()
    assert limit.allowed == 16


def test_a_window_that_never_reached_the_limit_does_not_raise_it():
    limit = AdaptiveLimit(ceiling=64, initial=8)
    for _ in range(80):
        limit.note_in_flight(2)  # the run had only two requests to send
        limit.on_answer(1.0)
    assert limit.allowed == 8


# ---- the pool holds back what a server cannot take ------------------------------------------


async def test_requests_past_the_limit_wait_in_the_pool_first_come_first_served():
    pool = EndpointPool(["http://a"], ceiling=2, initial=2)
    first, second = await pool.acquire(), await pool.acquire()
    order: list[int] = []

    async def later(n: int) -> None:
        lease = await pool.acquire()
        order.append(n)
        pool.release(lease, healthy=True, answered=True)

    waiting = [asyncio.create_task(later(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == [] and pool._endpoints[0].in_flight == 2
    pool.release(first, healthy=True, answered=True)
    pool.release(second, healthy=True, answered=True)
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2] and pool._endpoints[0].in_flight == 0


async def test_a_cancelled_waiter_does_not_lose_the_slot_it_was_woken_for():
    pool = EndpointPool(["http://a"], ceiling=1, initial=1)
    held = await pool.acquire()
    gone = asyncio.create_task(pool.acquire())
    kept = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    pool.release(held, healthy=True)  # wakes `gone` ...
    gone.cancel()  # ... which is cancelled before it runs
    lease = await asyncio.wait_for(kept, 5)
    assert lease.index == 0 and pool._endpoints[0].in_flight == 1


# ---- patience: a busy server is waited for, a silent one abandoned --------------------------


@asynccontextmanager
async def app_server(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


def client(url: str, **overrides: object) -> OpenAIHTTPClient:
    settings: dict = {"api_key": "sk-secret-abcdef123456", "timeout_s": 0.2, "connections": 8}
    settings.update(overrides)
    return OpenAIHTTPClient([url], "m", **settings)


ANSWER = {"choices": [{"message": {"content": '{"action": "stay"}'}}], "usage": {}}


async def test_a_busy_server_is_waited_for_not_sent_the_request_again():
    checked = asyncio.Event()
    chats = 0

    async def chat(request: web.Request) -> web.Response:
        nonlocal chats
        chats += 1
        await checked.wait()  # answers only once the client has checked it is alive
        return web.json_response(ANSWER)

    async def models(request: web.Request) -> web.Response:
        checked.set()
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    async with app_server(app) as url:
        http = client(url, deadline_s=600)
        completion = await http.complete(request())
        report = http.reports()[0]
        await http.aclose()
    assert completion.text == '{"action": "stay"}'
    assert chats == 1, "one request, waited for past its timeout"
    assert report.adjustments == 0, "one slow request on an idle server is no queue"


async def test_a_silent_server_is_abandoned_and_its_connection_closed():
    closed = asyncio.Event()
    received = asyncio.Event()

    class Silent(asyncio.Protocol):
        """Reads requests, answers nothing, ever; notes when the POST's connection closes
        (the liveness check's GET comes on a connection of its own)."""

        post = False

        def data_received(self, data: bytes) -> None:
            if data.startswith(b"POST"):
                self.post = True
                received.set()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.post:
                closed.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        http = client(f"http://127.0.0.1:{port}/v1")
        with pytest.raises(InferenceError) as caught:
            await http.complete(request())
        await asyncio.wait_for(closed.wait(), 10)
        await http.aclose()
    finally:
        server.close()
    assert received.is_set()
    assert "answered nothing else" in caught.value.reason and caught.value.retryable


# ---- answer formats, probed per endpoint ----------------------------------------------------


def test_the_format_chain_goes_from_most_to_least_constrained():
    assert chain_from("json_schema") == ("json_schema", "json_object+schema", "json_object", "none")
    assert chain_from("json_object") == ("json_object", "none")
    assert wire_format("json_schema", SCHEMA) == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA},
    }
    assert wire_format("json_object+schema", SCHEMA) == {"type": "json_object", "schema": SCHEMA}
    assert wire_format("json_schema", None) == {"type": "json_object"}
    assert wire_format("json_schema", SCHEMA, json_answer=False) is None


@pytest.mark.parametrize(
    ("taken", "mode", "asked"),
    [
        ("all", "json_schema", "json_schema"),
        ("json_object", "json_object+schema", "json_object"),
        ("none", "none", "none"),
    ],
)
async def test_each_endpoint_is_asked_in_the_best_form_it_takes(taken, mode, asked):
    async with mock_server(formats=taken) as (url, server):
        http = client(url, timeout_s=5)
        described = await http.prepare()
        await http.complete(request())
        await http.aclose()
    facts = described[url]
    assert facts["response_format"] == mode
    probe = facts["probe"]
    assert probe["requests"] == len(probe["refused"]) + 1 and probe["unprobed"] is None
    # The probes plus the one real request, each counted by the server.
    assert server.stats.requests == probe["requests"] + 1
    assert server.stats.formats[asked] >= 1


async def test_a_resumed_run_adopts_the_recorded_formats_without_probing():
    async with mock_server(formats="json_object") as (url, server):
        http = client(url, timeout_s=5)
        recorded = {url: {"response_format": "json_object+schema"}}
        described = await http.prepare(recorded)
        await http.aclose()
    assert described[url]["response_format"] == "json_object+schema"
    assert server.stats.requests == 0


async def test_litellm_probes_an_endpoint_the_same_way():
    async with mock_server(formats="json_object") as (url, server):
        llm = LiteLLMClient("mock", [url], api_key=None, timeout_s=5)
        described = await llm.prepare()
        completion = await llm.complete(request())
        await llm.aclose()
    assert described[url]["response_format"] == "json_object+schema"
    assert completion.text and server.stats.formats["json_object"] >= 2


@pytest.mark.slow
def test_a_run_records_each_endpoints_format_and_counts_its_probes(tmp_path):
    with mock_server_process("--latency-ms", "2", "--formats", "json_object") as url:
        result = run_cli(
            *("run", str(CONFIG), "-q", "--backend", "openai-http", "--model", "mock"),
            *("--endpoint", url, "--out", str(tmp_path / "run"), "--ticks", "2"),
            *("--agents", "18", "--set", "world.cells_per_district=4"),
            *("--set", f'inference.cache_dir="{tmp_path / "cache"}"'),
        )
        with __import__("urllib.request").request.urlopen(url[:-3] + "/health") as response:
            served = json.loads(response.read())
    assert result.returncode == 0, result.stderr
    log = records(tmp_path / "run" / "log.jsonl")
    facts = log[0]["endpoints"][url]
    assert facts["response_format"] == "json_object+schema"
    assert "json_schema" in facts["probe"]["refused"]
    assert served["requests"] == logged_requests(log)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["endpoints"][0]["url"] == url and summary["endpoints"][0]["limit"] >= 1
    assert len(of_kind(log, "decision")) == 36


# ---- bodies no server should send, and keys no message should show --------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"choices": [{"message": {"content": "{}"}}], "usage": {"prompt_tokens": -34800}},
            "malformed response body",
        ),
        (
            {"choices": [{"message": {"content": "{}"}}], "usage": {"completion_tokens": 10**12}},
            "malformed response body",
        ),
        ("[" * 20000 + "]" * 20000, "malformed response body"),
        (
            '{"choices": [{"message": {"content": "{}"}}], "x": ' + "[" * 20000 + "]" * 20000 + "}",
            "malformed response body (nested too deep)",
        ),
        ('{"choices": [{"message": {"content": "{}"}}], "x": ' + "[" * 20000, "malformed"),
        ({"choices": []}, "response has no message content"),
    ],
)
async def test_a_body_no_server_should_send_is_a_retryable_fault(body, reason):
    async def chat(request: web.Request) -> web.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(text=text, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with app_server(app) as url:
        http = client(url, timeout_s=5)
        with pytest.raises(InferenceError) as caught:
            await http.complete(request())
        await http.aclose()
    assert caught.value.reason.startswith(reason) and caught.value.retryable


def test_an_echoed_piece_of_a_key_is_redacted_wherever_it_starts():
    key = "sk-proj-4f9a8b7c6d5e4f3a2b1c"
    text = f"Incorrect API key provided: {key[:12]}****{key[-10:]}. Also {key}; and sk-proj."
    shown = redact(text, key)
    for start in range(len(key) - 7):
        assert key[start : start + 8] not in shown
    assert "sk-proj." in shown, "fewer than eight characters of a key are left alone"
    assert error_snippet(text.encode(), key).count("[redacted]") == 3


@pytest.mark.parametrize("backend", ["openai-http", "litellm"])
async def test_a_refused_key_reads_the_same_on_both_backends(backend):
    key = "sk-secret-abcdef123456"

    async def refuse(request: web.Request) -> web.Response:
        echoed = request.headers.get("Authorization", "")[7:17]  # a piece of the key
        return web.json_response({"error": {"message": f"bad key {echoed}..."}}, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    async with app_server(app) as url:
        if backend == "openai-http":
            transport = client(url, timeout_s=5)
        else:
            transport = LiteLLMClient("m", [url], api_key=key, timeout_s=5)
        with pytest.raises(InferenceError) as caught:
            await transport.complete(request())
        await transport.aclose()
    assert caught.value.reason == (
        "HTTP 401: the server refused the credentials (check the API key variable)"
    )
    assert not caught.value.retryable


# ---- review findings: each a scenario that once went wrong ----------------------------------


def test_an_answer_slower_than_the_timeout_is_not_taken_for_a_queue():
    limit = AdaptiveLimit(ceiling=64, initial=8)
    for _ in range(8):
        limit.note_in_flight(8)
        limit.on_answer(90.0)  # every answer takes 90 s: slow, not queued
    before = limit.allowed
    limit.on_late(61.0)  # a request waited past a 60 s timeout
    assert limit.allowed == before
    limit.on_late(200.0)  # well past what an unqueued answer takes: a queue
    assert limit.allowed == before // 2


async def test_instant_errors_do_not_teach_the_limit_a_false_no_load_latency():
    pool = EndpointPool(["http://a"], ceiling=64, initial=8)
    for _ in range(16):
        lease = await pool.acquire()
        pool.release(lease, healthy=False, answered=True)  # an instant 500: alive, no sample
    assert pool._endpoints[0].limit._floors == deque()


async def test_waiters_are_woken_when_an_ejected_endpoint_comes_back():
    pool = EndpointPool(
        ["http://a", "http://b"], ceiling=1, initial=1, eject_after=1, cooldown_s=0.05
    )
    a = await pool.acquire()
    b = await pool.acquire()
    pool.release(a if a.index == 0 else b, healthy=False)  # a is ejected for 0.05 s
    waiter = asyncio.create_task(pool.acquire())
    lease = await asyncio.wait_for(waiter, 30)  # b is still busy: only a's return wakes it
    assert lease.index == 0 and lease.probe


async def test_when_every_endpoint_is_out_one_request_at_a_time_goes_to_the_first_back():
    pool = EndpointPool(["http://a"], ceiling=8, initial=8, eject_after=1, cooldown_s=300)
    pool.release(await pool.acquire(), healthy=False)  # out for five minutes
    first = pool.try_acquire()
    assert first is not None and first.probe
    assert pool.try_acquire() is None, "the probe is the only one in flight"
    pool.release(first, healthy=True)
    assert pool.healthy() == [True]


async def test_a_probe_that_meets_a_loading_server_asks_the_same_form_again():
    from agora.engine.inference.formats import probe_endpoint

    answers = iter([(503, "HTTP 503: loading"), (200, "")])
    sent: list = []

    async def send(form):
        sent.append(form)
        return next(answers)

    async def no_sleep(seconds: float) -> None:
        return None

    result = await probe_endpoint(send, "json_schema", sleep=no_sleep)
    assert result.response_format == "json_schema" and result.requests == 2
    assert sent[0] == sent[1] and result.refused == {} and result.unprobed is None


async def test_a_server_down_at_the_start_is_not_remembered_as_probed(tmp_path):
    from agora.engine.inference.cache import CachedClient, ResponseCache

    http = client("http://127.0.0.1:9/v1", timeout_s=0.5)  # nothing listens on port 9
    cached = CachedClient(http, ResponseCache(tmp_path, "v"))
    import agora.engine.inference.formats as formats

    async def no_sleep(seconds: float) -> None:
        return None

    original = formats.probe_endpoint

    async def quick(send, requested, sleep=no_sleep):
        return await original(send, requested, sleep=no_sleep)

    http_module = __import__("agora.engine.inference.openai_http", fromlist=["probe_endpoint"])
    http_module.probe_endpoint, saved = quick, http_module.probe_endpoint
    try:
        described = await cached.prepare({})
    finally:
        http_module.probe_endpoint = saved
        await cached.aclose()
    facts = described["http://127.0.0.1:9/v1"]
    assert facts["probe"]["unprobed"] and facts["response_format"] == "json_schema"
    assert not list(tmp_path.rglob("*.json")), "nothing kept: the next run probes again"

"""Retry, cache and the openai-http transport, each against a fake or the real mock server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agora.engine.inference.cache import CachedClient, ResponseCache
from agora.engine.inference.errors import InferenceError
from agora.engine.inference.openai_http import OpenAIHTTPClient
from agora.engine.inference.retry import RetryingClient
from agora.engine.records import Completion, Message, Request
from tests.mock_server_fixture import mock_server

PROMPT = (
    "You are resident #5.\n\nYou live in district 2 (30 residents, density 0.60); your satisfaction is 0.900.\n"
    "- move to district 5 (20 residents): your satisfaction 0.840 (change -0.060); city welfare change +0.400"
)


def request(seed: int = 1, content: str = PROMPT) -> Request:
    return Request(
        agent_id=3,
        tick=0,
        messages=(Message("system", "rules"), Message("user", content)),
        seed=seed,
    )


class Flaky:
    backend, model = "fake", "fake-model"

    def __init__(self, failures: list[InferenceError]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def complete(self, req: Request) -> Completion:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Completion(
            text=f"answer {req.seed}", tokens_in=3, tokens_out=2, latency_s=0.01, model="fake-model"
        )

    async def aclose(self) -> None:
        return None


def retrying(inner, attempts=4):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = RetryingClient(
        inner,
        max_attempts=attempts,
        base_delay_s=1.0,
        max_delay_s=3.0,
        rng=np.random.default_rng(0),
        sleep=sleep,
    )
    return client, slept


async def test_retryable_failures_are_retried_with_growing_jittered_backoff():
    inner = Flaky([InferenceError("HTTP 503", retryable=True)] * 3)
    client, slept = retrying(inner)
    completion = await client.complete(request())
    assert completion.text == "answer 1" and completion.requests == 4
    assert 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0 and 1.5 <= slept[2] <= 3.0
    assert client.retries == 3


async def test_retry_after_is_honoured():
    inner = Flaky([InferenceError("HTTP 429", retryable=True, retry_after=7.0)])
    client, slept = retrying(inner)
    await client.complete(request())
    assert slept == [7.0]


async def test_non_retryable_errors_fail_fast_and_exhaustion_says_so():
    client, slept = retrying(Flaky([InferenceError("HTTP 401: refused", retryable=False)]))
    with pytest.raises(InferenceError, match=r"^HTTP 401: refused$") as caught:
        await client.complete(request())
    assert caught.value.requests == 1 and slept == []

    client, _ = retrying(Flaky([InferenceError("HTTP 500", retryable=True)] * 9), attempts=3)
    with pytest.raises(InferenceError, match=r"^HTTP 500 \(after 3 attempts\)$") as caught:
        await client.complete(request())
    assert caught.value.requests == 3 and not caught.value.retryable


async def test_the_cache_answers_a_repeat_without_a_request(tmp_path):
    inner = Flaky([])
    client = CachedClient(inner, ResponseCache(tmp_path))
    first = await client.complete(request(seed=5))
    again = await client.complete(request(seed=5))
    assert inner.calls == 1
    assert again.text == first.text and again.tokens_in == first.tokens_in
    assert again.cached and again.requests == 0 and not first.cached
    await client.complete(request(seed=6))  # another seed is another answer
    await client.complete(request(seed=5, content="other"))
    assert inner.calls == 3


def test_cache_keys_cover_everything_that_shapes_an_answer(tmp_path):
    cache = ResponseCache(tmp_path)
    base = request()
    import msgspec

    variants = [
        cache.key("m", base),
        cache.key("other-model", base),
        cache.key("m", msgspec.structs.replace(base, temperature=0.1)),
        cache.key("m", msgspec.structs.replace(base, max_tokens=7)),
        cache.key("m", msgspec.structs.replace(base, seed=2)),
        cache.key("m", msgspec.structs.replace(base, json_answer=False)),
    ]
    assert len(set(variants)) == len(variants)
    # The turn (offline-only data) and attempt number do not change what the server is asked.
    assert cache.key("m", msgspec.structs.replace(base, attempt=3)) == variants[0]


def test_a_damaged_cache_entry_is_a_miss(tmp_path):
    cache = ResponseCache(tmp_path)
    key = cache.key("m", request())
    cache.put(key, Completion("x", 1, 1, 0.1, "m"))
    assert cache.get(key) is not None
    path = next(tmp_path.rglob("*.json"))
    path.write_bytes(b"{broken")
    assert cache.get(key) is None


def transport(url: str, **overrides) -> OpenAIHTTPClient:
    settings = {"api_key": "sk-secret-123", "timeout_s": 2.0, "connections": 8, "json_mode": True}
    settings.update(overrides)
    return OpenAIHTTPClient([url], "mock", **settings)


async def test_openai_http_gets_a_world_format_answer_with_usage():
    async with mock_server() as (url, server):
        client = transport(url)
        completion = await client.complete(request(seed=4))
        await client.aclose()
    assert '"action":"move"' in completion.text and '"district":5' in completion.text
    assert completion.tokens_in > 0 and completion.tokens_out > 0 and completion.model == "mock"
    assert server.stats.answered == 1


@pytest.mark.parametrize(
    ("fault", "message", "retry_after"),
    [
        ({"rate_429": 1.0, "retry_after_s": 2.5}, "HTTP 429: ", 2.5),
        ({"rate_500": 1.0}, "HTTP 500: ", None),
        ({"rate_malformed": 1.0}, "malformed response body", None),
        ({"rate_drop": 1.0}, "connection failed", None),
        # The server hangs but is alive (it answers a liveness check): waited for, to the
        # deadline, not abandoned at the timeout and sent again.
        (
            {"rate_timeout": 1.0, "hang_s": 5.0},
            "no answer within 0.6 s (inference.request_deadline_s)",
            None,
        ),
    ],
)
async def test_openai_http_turns_every_fault_into_a_retryable_error(fault, message, retry_after):
    async with mock_server(**fault) as (url, _):
        client = transport(url, timeout_s=0.3, deadline_s=0.6)
        with pytest.raises(InferenceError) as caught:
            await client.complete(request())
        await client.aclose()
    assert caught.value.reason.startswith(message)
    assert caught.value.retryable and caught.value.retry_after == retry_after
    assert "sk-secret-123" not in caught.value.reason


async def test_openai_http_fails_fast_on_a_refused_key_without_showing_it():
    from aiohttp import web

    async def refuse(request: web.Request) -> web.Response:
        # A server that echoes the key it got must not leak it into our error.
        return web.json_response({"error": request.headers["Authorization"]}, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        client = transport(url)
        with pytest.raises(InferenceError) as caught:
            await client.complete(request())
        await client.aclose()
    finally:
        await runner.cleanup()
    assert not caught.value.retryable
    assert "sk-secret-123" not in str(caught.value) and "credentials" in caught.value.reason


async def test_openai_http_keeps_more_than_100_requests_in_flight():
    """aiohttp's default connector stops at 100; ours is sized to the run's concurrency."""
    async with mock_server(latency_ms=1000) as (url, server):
        client = transport(url, connections=150, timeout_s=20, adaptive=False)
        await asyncio.gather(*(client.complete(request(seed=s)) for s in range(150)))
        await client.aclose()
    assert server.stats.peak_in_flight > 100


def litellm_transport(url: str, **overrides):
    from agora.engine.inference.litellm_client import LiteLLMClient

    settings = {"api_key": "sk-secret-123", "timeout_s": 2.0, "json_mode": True}
    settings.update(overrides)
    return LiteLLMClient("mock", [url], **settings)


async def test_litellm_reaches_an_openai_compatible_endpoint():
    async with mock_server() as (url, server):
        completion = await litellm_transport(url).complete(request(seed=4))
    assert '"district":5' in completion.text
    assert completion.tokens_in > 0 and completion.model == "mock"
    assert server.stats.answered == 1


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        ({"rate_429": 1.0, "retry_after_s": 2.5}, 2.5),
        ({"rate_500": 1.0}, None),
        ({"rate_drop": 1.0}, None),
        ({"rate_timeout": 1.0, "hang_s": 5.0}, None),
    ],
)
async def test_litellm_faults_are_retryable_and_keep_retry_after(fault, retry_after):
    async with mock_server(**fault) as (url, server):
        with pytest.raises(InferenceError) as caught:
            await litellm_transport(url, timeout_s=0.5).complete(request())
    assert caught.value.retryable
    assert caught.value.retry_after == retry_after
    assert "sk-secret-123" not in caught.value.reason
    assert server.stats.requests == 1, "litellm's own retries are off: agora owns retries"


async def test_litellm_fails_fast_on_a_bad_request():
    from aiohttp import web

    async def reject(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "context too long"}}, status=400)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", reject)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        with pytest.raises(InferenceError) as caught:
            await litellm_transport(url).complete(request())
    finally:
        await runner.cleanup()
    assert not caught.value.retryable
    assert caught.value.reason.startswith("HTTP 400")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_token_bucket_waits_exactly_as_long_as_the_refill_needs():
    from agora.engine.inference.limits import TokenBucket

    clock = FakeClock()
    bucket = TokenBucket(600, clock=clock, sleep=clock.sleep)  # 10 tokens a second
    await bucket.take(600)
    assert clock.slept == []
    await bucket.take(50)
    assert clock.slept == [pytest.approx(5.0)]
    bucket.settle(reserved=50, used=10)  # the server counted fewer: 40 come back
    await bucket.take(40)
    assert len(clock.slept) == 1
    await bucket.take(10_000)  # larger than the bucket: waits for a full one, not forever
    assert clock.slept[-1] == pytest.approx(60.0)


async def test_limited_client_reserves_and_settles_tokens():
    from agora.engine.inference.limits import LimitedClient, estimate_tokens

    clock = FakeClock()
    inner = Flaky([])
    client = LimitedClient(
        inner, requests_per_minute=None, tokens_per_minute=6000, clock=clock, sleep=clock.sleep
    )
    req = request()
    reserved = estimate_tokens(req)
    assert reserved == sum(len(m.content) for m in req.messages) // 4 + 1 + req.max_tokens
    await client.complete(req)
    bucket = client._bucket
    assert bucket is not None and bucket.level == pytest.approx(6000 - 5)  # usage 3 + 2


async def test_limited_client_holds_requests_per_minute():
    from agora.engine.inference.limits import LimitedClient

    inner = Flaky([])
    client = LimitedClient(inner, requests_per_minute=3, tokens_per_minute=None)
    done = 0

    async def one() -> None:
        nonlocal done
        await client.complete(request())
        done += 1

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    await asyncio.sleep(0.2)
    assert done == 3  # the other two wait for the window to move on
    for task in tasks:
        task.cancel()


def test_prompts_render_with_a_chat_template():
    from agora.engine.inference.openai_http import render_prompt

    messages = (Message("system", "rules"), Message("user", "hi"))
    assert render_prompt(messages, "chatml") == (
        "<|im_start|>system\nrules<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_prompt(messages, "plain") == "SYSTEM:\nrules\n\nUSER:\nhi\n\nASSISTANT:\n"


async def test_micro_batches_go_out_as_one_completions_request_each():
    async with mock_server() as (url, server):
        client = transport(url, batch_max_size=8, batch_max_wait_ms=50)
        prompts = [PROMPT.replace("#5", f"#{n}") for n in range(20)]
        results = await asyncio.gather(
            *(client.complete(request(seed=i, content=p)) for i, p in enumerate(prompts))
        )
        await client.aclose()
    assert server.stats.requests == 3  # 8 + 8 + 4 (the last sent when its wait ran out)
    for n, completion in enumerate(results):
        # Each caller gets its own answer: altruists (#0, #5, #10, #15) move, egoists stay.
        assert ('"action":"move"' in completion.text) == (n % 5 == 0)
        assert completion.tokens_in > 0 and completion.tokens_out > 0


async def test_a_failed_batch_fails_each_of_its_requests():
    async with mock_server(rate_500=1.0) as (url, _):
        client = transport(url, batch_max_size=4, batch_max_wait_ms=10)
        results = await asyncio.gather(
            *(client.complete(request(seed=i)) for i in range(4)), return_exceptions=True
        )
        await client.aclose()
    assert all(
        isinstance(r, InferenceError) and r.retryable and r.reason.startswith("HTTP 500")
        for r in results
    )
    assert len({id(r) for r in results}) == 4


def test_a_key_cut_by_the_snippet_limit_leaves_no_piece_behind():
    from agora.engine.inference.openai_http import _status_error

    key = "sk-SECRET0123456789abcdef"
    body = ("x" * 190 + key + "y" * 50).encode()
    error = _status_error(500, {}, body, key)
    assert "sk-SECRET" not in error.reason and "SECRET0" not in error.reason


def test_cache_entries_of_one_transport_setting_are_not_served_to_another(tmp_path):
    json_on = ResponseCache(tmp_path, "openai-http|json=True")
    json_off = ResponseCache(tmp_path, "openai-http|json=False")
    assert json_on.key("m", request()) != json_off.key("m", request())


async def test_a_batch_holds_only_requests_sampled_alike():
    async with mock_server() as (url, server):
        client = transport(url, batch_max_size=8, batch_max_wait_ms=20)
        import msgspec

        cold = [msgspec.structs.replace(request(seed=i), temperature=0.0) for i in range(3)]
        warm = [request(seed=10 + i) for i in range(3)]
        await asyncio.gather(*(client.complete(r) for r in cold + warm))
        await client.aclose()
    assert server.stats.requests == 2


async def test_closing_does_not_wait_for_batches_nobody_awaits():
    import time as clock

    async with mock_server(rate_timeout=1.0, hang_s=30) as (url, _):
        client = transport(url, batch_max_size=2, batch_max_wait_ms=1, timeout_s=30)
        task = asyncio.create_task(client.complete(request()))
        await asyncio.sleep(0.1)
        task.cancel()
        started = clock.perf_counter()
        await client.aclose()
        assert clock.perf_counter() - started < 2


async def test_the_token_bucket_keeps_a_debt():
    from agora.engine.inference.limits import TokenBucket

    clock = FakeClock()
    bucket = TokenBucket(600, clock=clock, sleep=clock.sleep)
    await bucket.take(100)
    clock.now += 10  # refills 100 while the request runs: the bucket is full again
    bucket.settle(reserved=100, used=700)  # the server counted 600 more than reserved
    assert bucket.level == pytest.approx(0.0)
    await bucket.take(10)
    assert clock.slept == [pytest.approx(1.0)]


def test_answers_are_cached_per_set_of_servers(tmp_path):
    from agora.engine.config import InferenceSection
    from agora.engine.inference.build import build_client
    from agora.engine.seeding import Seeds

    def variant(endpoints):
        settings = InferenceSection(
            backend="openai-http", model="m", endpoints=endpoints, cache_dir=str(tmp_path)
        )
        client = build_client(settings, None, [], Seeds(1), {})
        assert isinstance(client, CachedClient)
        return client.cache.variant

    one = variant(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])
    assert one == variant(["http://127.0.0.1:2/v1", "http://127.0.0.1:1/v1"]), "a fleet, any order"
    assert one != variant(["http://127.0.0.1:3/v1"]), "another server, other answers"

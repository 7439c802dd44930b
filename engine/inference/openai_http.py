"""The fast path: aiohttp straight to any OpenAI-compatible server (vLLM, SGLang, Ollama, OpenAI).

One session for the run, its connector sized to the run's concurrency (aiohttp's default stops
at 100 in flight), keep-alive on. Bodies are encoded and decoded with msgspec. Every failure
becomes an ``InferenceError`` that says whether a retry may help; no header, and so no API key,
ever reaches an error message.

Two modes. ``chat`` (the default): one ``/chat/completions`` request per decision. ``batch``
(``batch_max_size`` > 1): requests are gathered for at most ``batch_max_wait_ms`` or until
``batch_max_size`` are waiting, rendered with a chat template, and sent as one
``/v1/completions`` request with a list of prompts; each answer goes back to its own caller.
Servers like vLLM schedule such a list as one batch. A batch carries one sampling seed (its
first request's) and reports usage for the whole batch, which is shared out by text length.

Every request goes through the endpoint pool, which holds back what a server cannot take
(``endpoints.py``), and waits for its answer as long as the server is alive (``patience.py``).
Answers are asked in each endpoint's best ``response_format`` (``formats.py``), found by
``prepare`` before the run starts. A body the client cannot read (garbage, nested too deep,
usage that makes no sense) is a retryable fault, never an answer.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import aiohttp
import msgspec

from agora.engine.inference.endpoints import EndpointPool, Lease
from agora.engine.inference.errors import (
    MOST_TOKENS,
    OVERLOAD_STATUS,
    RETRYABLE_STATUS,
    InferenceError,
)
from agora.engine.inference.formats import (
    PROBE_PROMPT,
    EndpointFormats,
    FormatMode,
    ProbeResult,
    Requested,
    probe_endpoint,
    wire_format,
)
from agora.engine.inference.patience import LivenessCheck, answer_or_abandon
from agora.engine.inference.redact import error_snippet
from agora.engine.records import Completion, EndpointReport, Message, Request

_Count = Annotated[int, msgspec.Meta(ge=0, le=MOST_TOKENS)]

PromptTemplate = Literal["chatml", "plain"]


def render_prompt(messages: Sequence[Message], template: PromptTemplate) -> str:
    """Chat messages as one completion prompt (``/v1/completions`` applies no chat template)."""
    if template == "chatml":
        turns = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
        return "".join(turns) + "<|im_start|>assistant\n"
    turns = [f"{m.role.upper()}:\n{m.content}\n\n" for m in messages]
    return "".join(turns) + "ASSISTANT:\n"


class _Usage(msgspec.Struct):
    prompt_tokens: _Count = 0
    completion_tokens: _Count = 0


class _ChatMessage(msgspec.Struct):
    content: str | None = None


class _ChatChoice(msgspec.Struct):
    message: _ChatMessage


class _ChatResponse(msgspec.Struct):
    choices: list[_ChatChoice]
    usage: _Usage | None = None
    model: str | None = None


class _TextChoice(msgspec.Struct):
    text: str
    index: int = 0


class _CompletionsResponse(msgspec.Struct):
    choices: list[_TextChoice]
    usage: _Usage | None = None
    model: str | None = None


class _WireMessage(msgspec.Struct, omit_defaults=True):
    role: str
    content: str


class _ChatRequest(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[_WireMessage]
    temperature: float
    max_tokens: int
    seed: int
    response_format: dict[str, Any] | None = None


class _CompletionsRequest(msgspec.Struct, omit_defaults=True):
    model: str
    prompt: list[str]
    temperature: float
    max_tokens: int
    seed: int
    response_format: dict[str, Any] | None = None


_Waiting = tuple[Request, "asyncio.Future[Completion]"]


class OpenAIHTTPClient:
    backend = "openai-http"

    def __init__(
        self,
        endpoints: Sequence[str],
        model: str,
        *,
        api_key: str | None,
        timeout_s: float,
        connections: int,
        json_mode: bool = True,
        response_format: Requested = "json_schema",
        eject_after: int = 3,
        cooldown_s: float = 5.0,
        batch_max_size: int = 1,
        batch_max_wait_ms: float = 5.0,
        prompt_template: PromptTemplate = "chatml",
        adaptive: bool = True,
        initial_concurrency: int = 4,
        deadline_s: float | None = None,
    ) -> None:
        self._pool = EndpointPool(
            endpoints,
            ceiling=connections,
            initial=initial_concurrency,
            adaptive=adaptive,
            eject_after=eject_after,
            cooldown_s=cooldown_s,
        )
        self._model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._deadline_s = deadline_s if deadline_s is not None else 10 * timeout_s
        self._connections = connections
        requested: Requested = response_format if json_mode else "none"
        self._requested = requested
        # Until ``prepare`` has probed them, endpoints are asked in the form the config wants.
        self.formats = EndpointFormats([url.rstrip("/") for url in endpoints], requested)
        self._session: aiohttp.ClientSession | None = None
        self._encode = msgspec.json.Encoder().encode
        self._decode_chat = msgspec.json.Decoder(_ChatResponse).decode
        self._decode_text = msgspec.json.Decoder(_CompletionsResponse).decode
        self._batch_max_size = batch_max_size
        self._batch_wait_s = batch_max_wait_ms / 1000.0
        self._template: PromptTemplate = prompt_template
        self._waiting: list[_Waiting] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._liveness = LivenessCheck(api_key, timeout_s)

    @property
    def model(self) -> str:
        return self._model

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=self._connections, keepalive_timeout=60
            )
            # The whole wait is ``answer_or_abandon``'s; aiohttp only bounds the connect and
            # keeps a last-resort cap.
            timeout = aiohttp.ClientTimeout(
                total=self._deadline_s + self._timeout_s, sock_connect=self._timeout_s
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, headers=headers
            )
        return self._session

    async def prepare(self, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Probe each endpoint for the most constrained ``response_format`` it takes."""
        if known:
            self.formats.adopt(known)
        if self.formats.settled:
            return self.formats.describe()
        urls = list(self.formats.modes)
        results = await asyncio.gather(*(self._probe(url) for url in urls))
        for url, result in zip(urls, results, strict=True):
            self.formats.settle(url, result)
        return self.formats.describe()

    async def _probe(self, url: str) -> ProbeResult:
        session = self._open()

        async def send(response_format: dict[str, Any] | None) -> tuple[int | None, str]:
            body = _ChatRequest(
                model=self._model,
                messages=[_WireMessage("user", PROBE_PROMPT)],
                temperature=0.0,
                max_tokens=8,
                seed=0,
                response_format=response_format,
            )
            try:
                async with session.post(
                    f"{url}/chat/completions",
                    data=self._encode(body),
                    timeout=aiohttp.ClientTimeout(total=self._deadline_s),
                ) as response:
                    payload = await response.read()
                    detail = error_snippet(payload, self._api_key)
                    return response.status, f"HTTP {response.status}: {detail}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                return None, f"no answer: {type(exc).__name__}"

        return await probe_endpoint(send, self._requested)

    def reports(self) -> list[EndpointReport]:
        return self._pool.reports()

    async def _post(self, path: str, body_for: Any, decode: Any) -> tuple[Any, float]:
        """POST to the endpoint with the most room; the decoded body and the latency.

        ``body_for(mode)`` encodes the body in the endpoint's answer format."""
        session = self._open()
        lease = await self._pool.acquire()
        started = time.perf_counter()
        verdict: bool | None = None  # stays None if the caller cancels: no word on health
        answered = sample = overloaded = False
        try:
            try:
                payload, status, headers = await answer_or_abandon(
                    self._send(session, lease, path, body_for(self.formats.modes[lease.url])),
                    pool=self._pool,
                    lease=lease,
                    timeout_s=self._timeout_s,
                    deadline_s=self._deadline_s,
                    alive=self._liveness.for_url(lease.url),
                )
            except InferenceError:
                verdict = False
                overloaded = True  # abandoned: it had more queued than it could serve
                raise
            except TimeoutError:
                verdict = False
                raise InferenceError(
                    f"no answer within {self._timeout_s:g} s", retryable=True
                ) from None
            except aiohttp.ClientError as exc:
                verdict = False
                raise InferenceError(
                    f"connection failed: {type(exc).__name__}", retryable=True
                ) from None
            answered = True
            if status != 200:
                verdict = status < 500  # a 429 or a 4xx comes from a live server
                overloaded = status in OVERLOAD_STATUS
                raise _status_error(status, headers, payload, self._api_key)
            sample = True
            try:
                decoded = decode(payload)
            except (msgspec.DecodeError, RecursionError) as exc:
                verdict = False  # a server sending garbage is not one to keep asking
                raise InferenceError(
                    "malformed response body" + _why_malformed(exc), retryable=True
                ) from None
            verdict = True
            return decoded, time.perf_counter() - started
        finally:
            self._pool.release(
                lease, healthy=verdict, answered=answered, sample=sample, overloaded=overloaded
            )

    @staticmethod
    async def _send(
        session: aiohttp.ClientSession, lease: Lease, path: str, body: bytes
    ) -> tuple[bytes, int, Any]:
        async with session.post(f"{lease.url}/{path}", data=body) as response:
            return await response.read(), response.status, response.headers

    async def complete(self, request: Request) -> Completion:
        if self._batch_max_size > 1:
            return await self._enqueue(request)
        messages = [_WireMessage(m.role, m.content) for m in request.messages]

        def body_for(mode: FormatMode) -> bytes:
            return self._encode(
                _ChatRequest(
                    model=self._model,
                    messages=messages,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    seed=request.seed,
                    response_format=wire_format(mode, request.answer_schema, request.json_answer),
                )
            )

        parsed, latency = await self._post("chat/completions", body_for, self._decode_chat)
        if not parsed.choices or parsed.choices[0].message.content is None:
            raise InferenceError("response has no message content", retryable=True)
        usage = parsed.usage or _Usage()
        return Completion(
            text=parsed.choices[0].message.content,
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
            latency_s=latency,
            model=parsed.model or self._model,
        )

    # -- micro-batching ------------------------------------------------------------------------

    def _enqueue(self, request: Request) -> asyncio.Future[Completion]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()
        if self._waiting and _sampling(self._waiting[0][0]) != _sampling(request):
            self._flush()  # one batch is sampled one way: different settings go in the next
        self._waiting.append((request, future))
        if len(self._waiting) >= self._batch_max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._batch_wait_s, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            batch = self._waiting[: self._batch_max_size]
            del self._waiting[: self._batch_max_size]
            task = asyncio.create_task(self._send_batch(batch))
            self._sending.add(task)  # held until done, so the task is not collected mid-flight
            task.add_done_callback(self._sending.discard)
            # A batch cancelled before it ran never reached its own handlers: fail its callers.
            task.add_done_callback(functools.partial(_fail_unanswered, batch))

    async def _send_batch(self, batch: list[_Waiting]) -> None:
        first = batch[0][0]
        prompts = [render_prompt(request.messages, self._template) for request, _ in batch]
        max_tokens = max(request.max_tokens for request, _ in batch)

        def body_for(mode: FormatMode) -> bytes:
            return self._encode(
                _CompletionsRequest(
                    model=self._model,
                    prompt=prompts,
                    temperature=first.temperature,
                    max_tokens=max_tokens,
                    seed=first.seed,
                    response_format=wire_format(mode, first.answer_schema, first.json_answer),
                )
            )

        try:
            parsed, latency = await self._post("completions", body_for, self._decode_text)
            texts = {choice.index: choice.text for choice in parsed.choices}
            if sorted(texts) != list(range(len(batch))):
                raise InferenceError(
                    "malformed response body: choices do not match the prompts", retryable=True
                )
        except InferenceError as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        InferenceError(
                            exc.reason, retryable=exc.retryable, retry_after=exc.retry_after
                        )
                    )
            return
        except BaseException as exc:  # never leave a caller waiting forever
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        usage = parsed.usage or _Usage()
        prompt_chars = sum(len(p) for p in prompts) or 1
        text_chars = sum(len(t) for t in texts.values()) or 1
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue  # its caller gave up (cancelled)
            text = texts[index]
            future.set_result(
                Completion(
                    text=text,
                    tokens_in=round(usage.prompt_tokens * len(prompts[index]) / prompt_chars),
                    tokens_out=round(usage.completion_tokens * len(text) / text_chars),
                    latency_s=latency,
                    model=parsed.model or self._model,
                )
            )

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # At a normal end every batch has been answered; after an interruption nobody waits
        # for the rest: requests not yet sent fail at once, batches in flight are cancelled
        # rather than awaited to their timeout, and no caller is left waiting on either.
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            if not future.done():
                future.set_exception(InferenceError("the client was closed", retryable=False))
        for task in self._sending:
            task.cancel()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self._liveness.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _fail_unanswered(batch: list[_Waiting], task: asyncio.Task[None]) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(InferenceError("the batch was cancelled", retryable=True))


def _sampling(request: Request) -> tuple[float, bool, int]:
    # One batch is asked one way: sampling and answer schema alike (schemas are shared
    # objects per world, so their identity tells them apart cheaply).
    return request.temperature, request.json_answer, id(request.answer_schema)


def _status_error(status: int, headers: Any, payload: bytes, secret: str | None) -> InferenceError:
    retry_after = _retry_after(headers.get("Retry-After"))
    detail = error_snippet(payload, secret)  # redacted before it is cut: no piece survives
    if status == 401 or status == 403:
        reason = f"HTTP {status}: the server refused the credentials (check the API key variable)"
    elif status == 404:
        reason = f"HTTP 404: no such model or path ({detail})"
    else:
        reason = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    return InferenceError(reason, retryable=status in RETRYABLE_STATUS, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _why_malformed(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return " (nested too deep)"
    text = str(exc)
    return f" ({text[:120]})" if text else ""

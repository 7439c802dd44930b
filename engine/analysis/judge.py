"""Open coding by an LLM judge, through any engine client (offline, openai-http, litellm) with
the engine's layers: limits, retries and the response cache.

The judge is shown the codebook and one reasoning and answers ``{"codes": [...], "memo": ...}``.
An answer that is not such an object, or names a code the codebook lacks, is re-asked up to
``max_reasks`` times and, if still unusable, recorded as invalid with its raw text and the
reason: it is never read as "no code applies".

On the offline backend there is no model to ask. The engine's offline client then answers with
``OfflineJudge``, which writes the codebook coder's codes as the judge's JSON: the whole path
(prompt, parsing, re-asks on the offline backend's injected faults) runs, and the coder is
labelled "offline judge (codebook rules, not a model)" so its agreement with the rule coder (1
by construction) is never taken for a model's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import msgspec
import numpy as np
import structlog

from agora.engine.analysis.codebook import Codebook, CodebookCoder, OpenCode
from agora.engine.answer_json import AnswerFormatError, extract_json_object
from agora.engine.config import InferenceSection
from agora.engine.inference.build import build_client
from agora.engine.inference.errors import InferenceError
from agora.engine.protocols import LLMClient
from agora.engine.records import Invalid, InvalidAttempt, Message, Request, Turn
from agora.engine.seeding import Seeds

_log = structlog.get_logger("agora.analysis.judge")

OFFLINE_JUDGE_LABEL = "offline judge (codebook rules, not a model)"
_OFFLINE_MEMO = "offline judge: the codebook's rules, not a model"
_ECHO_LIMIT = 2000


class JudgePrompts(msgspec.Struct, frozen=True):
    """The judge's texts: ``system`` holds ``{name}`` and ``{codes}``, ``item`` holds
    ``{reasoning}``, ``reask`` holds ``{reason}``."""

    system: str
    item: str
    reask: str


def load_judge_prompts() -> JudgePrompts:
    """The prompts shipped beside this module, in ``prompts/``."""
    folder = resources.files("agora.engine.analysis") / "prompts"
    return JudgePrompts(
        system=(folder / "open_coding.txt").read_text(encoding="utf-8"),
        item=(folder / "open_coding_item.txt").read_text(encoding="utf-8"),
        reask=(folder / "open_coding_reask.txt").read_text(encoding="utf-8").strip(),
    )


def render_codes(codebook: Codebook) -> str:
    titles = {c.name: c.title or c.name for c in codebook.categories}
    return "\n".join(
        f"- {code.name} [{titles[code.category]}]: {code.description.strip()}"
        for code in codebook.codes
    )


def _fill(template: str, **values: str) -> str:
    # str.format would trip on the JSON braces the prompts show.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def parse_judgement(text: str, codebook: Codebook) -> tuple[tuple[str, ...], str] | Invalid:
    """The codes (in the codebook's order) and memo of a judge's answer, or why it is unusable.

    Code names are matched ignoring case, spaces and hyphens ("Own utility" is ``own_utility``);
    anything else not in the codebook makes the answer invalid."""
    try:
        answer = extract_json_object(text)
    except AnswerFormatError as exc:
        return Invalid(raw=text, reason=str(exc))
    codes = answer.get("codes")
    if codes is None:
        return Invalid(raw=text, reason='the answer has no "codes" list')
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        return Invalid(raw=text, reason='"codes" must be a list of code names')
    known = {name: name for name in codebook.code_names}
    chosen: set[str] = set()
    unknown: list[str] = []
    for code in codes:
        key = code.strip().lower().replace(" ", "_").replace("-", "_")
        if key in known:
            chosen.add(known[key])
        else:
            unknown.append(code)
    if unknown:
        listed = ", ".join(repr(u) for u in unknown)
        return Invalid(raw=text, reason=f"unknown code(s) {listed}")
    memo = answer.get("memo", "")
    memo = memo if isinstance(memo, str) else msgspec.json.encode(memo).decode()
    return tuple(name for name in codebook.code_names if name in chosen), memo.strip()


class OfflineJudge:
    """The offline backend's stand-in for a judge (an ``OfflineBehaviour``): the request's
    observation is the reasoning, the answer the codebook coder's codes."""

    def __init__(self, codebook: Codebook) -> None:
        self._coder = CodebookCoder(codebook)

    def decide(
        self,
        agent_id: int,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float] | None = None,
    ) -> tuple[dict[str, Any], str]:
        codes = self._coder.code_text(str(observation))
        return {"codes": list(codes), "memo": _OFFLINE_MEMO}, "offline-judge"

    def describe(self) -> dict[str, Any]:
        return {"model": OFFLINE_JUDGE_LABEL}


class JudgeCoder:
    """Open coding by an LLM judge: one request per distinct text, temperature 0, at most
    ``concurrency`` in flight. Results come back in the order of the texts."""

    def __init__(
        self,
        client: LLMClient,
        codebook: Codebook,
        *,
        max_reasks: int = 2,
        concurrency: int = 8,
        max_tokens: int = 512,
        json_answer: bool = True,
        seed: int = 0,
        prompts: JudgePrompts | None = None,
    ) -> None:
        if concurrency < 1 or max_reasks < 0:
            raise ValueError("concurrency must be at least 1 and max_reasks at least 0")
        self.client = client
        self.codebook = codebook
        self.max_reasks = max_reasks
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        self.json_answer = json_answer
        self.seeds = Seeds(seed)
        texts = prompts or load_judge_prompts()
        self.prompts = texts
        self._system = _fill(texts.system, name=codebook.name, codes=render_codes(codebook))

    @classmethod
    def from_settings(
        cls,
        settings: InferenceSection,
        codebook: Codebook,
        *,
        seed: int = 0,
        environ: Mapping[str, str] | None = None,
        prompts: JudgePrompts | None = None,
    ) -> JudgeCoder:
        """A judge on the client the engine builds from an ``[inference]`` section: the same
        backends, limits, retries and cache as a run. The section's temperature is not used:
        coding asks at temperature 0."""
        client = build_client(
            settings,
            OfflineJudge(codebook),
            (),
            Seeds(seed),
            os.environ if environ is None else environ,
        )
        return cls(
            client,
            codebook,
            max_reasks=settings.max_reasks,
            concurrency=settings.concurrency,
            max_tokens=settings.max_tokens,
            json_answer=settings.json_mode,
            seed=seed,
            prompts=prompts,
        )

    @property
    def backend(self) -> str:
        return self.client.backend

    @property
    def model(self) -> str:
        return self.client.model

    @property
    def label(self) -> str:
        if self.client.backend == "offline":
            return OFFLINE_JUDGE_LABEL
        return f"LLM judge {self.client.backend}/{self.client.model}"

    def request(self, index: int, text: str) -> Request:
        return Request(
            agent_id=index,
            tick=0,
            messages=(
                Message("system", self._system),
                Message("user", _fill(self.prompts.item, reasoning=text)),
            ),
            seed=self._seed(text, 0),
            temperature=0.0,
            max_tokens=self.max_tokens,
            json_answer=self.json_answer,
            # Read by the offline backend only; never sent to a server.
            turn=Turn(tick=0, agent_id=index, observation=text, views={}),
        )

    def _seed(self, text: str, attempt: int) -> int:
        # From the text, not its position: the same reasoning gets the same request (and cache
        # entry) whichever sample it is in.
        key = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")
        return self.seeds.integer("open-coding", key, attempt)

    async def code(self, texts: Sequence[str]) -> list[OpenCode]:
        results: list[OpenCode | None] = [None] * len(texts)
        pending = iter(range(len(texts)))

        async def worker() -> None:
            # One shared iterator: a worker takes the next text when it is free, so at most
            # ``concurrency`` requests are in flight and no task per text is created up front.
            for index in pending:
                results[index] = await self._code_one(index, texts[index])

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(texts)))))
        return [r for r in results if r is not None]

    async def _code_one(self, index: int, text: str) -> OpenCode:
        request = self.request(index, text)
        invalid: list[InvalidAttempt] = []
        requests = 0
        all_cached = True
        last: Invalid | None = None
        for attempt in range(self.max_reasks + 1):
            try:
                completion = await self.client.complete(request)
            except InferenceError as exc:
                return OpenCode(
                    codes=(),
                    valid=False,
                    raw=last.raw if last else "",
                    reason=exc.reason,
                    error=exc.reason,
                    attempts=attempt,
                    requests=requests + exc.requests,
                    invalid_attempts=tuple(invalid),
                )
            except Exception as exc:  # one item's fault must not take the others down
                _log.exception("judge request failed", item=index)
                reason = f"internal error: {type(exc).__name__}: {exc}"
                return OpenCode(
                    codes=(),
                    valid=False,
                    reason=reason,
                    error=reason,
                    attempts=attempt,
                    requests=requests,
                    invalid_attempts=tuple(invalid),
                )
            requests += completion.requests
            all_cached = all_cached and completion.cached
            parsed = parse_judgement(completion.text, self.codebook)
            if not isinstance(parsed, Invalid):
                codes, memo = parsed
                return OpenCode(
                    codes=codes,
                    memo=memo,
                    raw=completion.text,
                    attempts=attempt + 1,
                    requests=requests,
                    cached=all_cached,
                    invalid_attempts=tuple(invalid),
                )
            invalid.append(InvalidAttempt(raw=parsed.raw, reason=parsed.reason))
            last = parsed
            request = self._reask(request, parsed, text, attempt + 1)
        assert last is not None
        return OpenCode(
            codes=(),
            valid=False,
            raw=last.raw,
            reason=last.reason,
            attempts=self.max_reasks + 1,
            requests=requests,
            cached=all_cached,
            # The last attempt is the record's own raw and reason.
            invalid_attempts=tuple(invalid[:-1]),
        )

    def _reask(self, request: Request, invalid: Invalid, text: str, attempt: int) -> Request:
        echo = invalid.raw if len(invalid.raw) <= _ECHO_LIMIT else invalid.raw[:_ECHO_LIMIT] + "…"
        messages = (
            *request.messages,
            Message("assistant", echo),
            Message("user", _fill(self.prompts.reask, reason=invalid.reason)),
        )
        return msgspec.structs.replace(
            request, messages=messages, seed=self._seed(text, attempt), attempt=attempt
        )

    async def aclose(self) -> None:
        await self.client.aclose()

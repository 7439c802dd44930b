"""Client CPU per request on Mesa-LLM 0.2.0's own LLM call path; run with the peers' venv.

Run by ``bench/client_cpu.py`` as ``bench/.peers-venv/bin/python bench/peers/mesa_llm_client.py``
against the same ``agora mock-server``; prints one JSON line.

The path is ``ModuleLLM.agenerate``, the one Mesa-LLM's parallel stepping takes
(``LLMAgent.astep`` → reasoning ``aplan`` → ``ModuleLLM.agenerate`` → tenacity's
``AsyncRetrying`` around ``litellm.acompletion``). It is async, so the requests go out as
coroutines on one asyncio event loop, plain asyncio as Mesa-LLM's ``step_agents_parallel`` runs
them (``asyncio.run``), ``--concurrency`` of them in flight; no threads.

Pointing it at the mock server: ``ModuleLLM("openai/mock")`` reads its key from
``OPENAI_API_KEY`` (a dummy here). ``agenerate`` does not hand the ``api_base`` given to
``ModuleLLM`` on to litellm (``generate`` does), and ``LLMAgent`` never passes one, so a Mesa-LLM
agent reaches a self-hosted OpenAI-compatible server through ``OPENAI_API_BASE``, which litellm
reads; it is set here, and ``api_base`` is passed too.

As in agora's litellm path, litellm's cost map is read from the package, not fetched, and the
import is done before timing: neither is per-request CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from typing import Any


async def measure(
    llm: Any, prompt: str, requests: int, concurrency: int
) -> tuple[float, float, int, list[str]]:
    """(CPU s, wall s, answered, first errors) for ``requests`` calls at ``concurrency``."""
    answered = 0
    errors: list[str] = []

    async def worker(pending: Any) -> None:
        nonlocal answered
        for _ in pending:
            try:
                response = await llm.agenerate(prompt, response_format={"type": "json_object"})
            except Exception as exc:  # counted and named in the output, not hidden
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if response.choices[0].message.content:
                answered += 1

    # Warm-up as agora's paths get one: connections opened, lazy imports done.
    warm = iter(range(requests))
    await asyncio.gather(*(worker(warm) for _ in range(min(concurrency, 16))))
    answered, errors = 0, []
    pending = iter(range(requests))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(pending) for _ in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall, answered, errors[:5]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="the mock server, http://127.0.0.1:PORT/v1")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--system", default="rules")
    parser.add_argument("--prompt", required=True)
    args = parser.parse_args()

    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["OPENAI_API_BASE"] = args.url
    os.environ.setdefault("OPENAI_API_KEY", "dummy-key-for-the-mock-server")
    module_llm = importlib.import_module("mesa_llm.module_llm")
    llm = module_llm.ModuleLLM("openai/mock", api_base=args.url, system_prompt=args.system)
    cpu, wall, answered, errors = asyncio.run(
        measure(llm, args.prompt, args.requests, args.concurrency)
    )
    print(
        json.dumps(
            {
                "subject": "mesa-llm",
                "path": "mesa_llm.module_llm.ModuleLLM.agenerate (asyncio)",
                "versions": {
                    name: importlib.metadata.version(name) for name in ("mesa-llm", "litellm")
                }
                | {"python": platform.python_version()},
                "requests": args.requests,
                "concurrency": args.concurrency,
                "cpu_s": cpu,
                "wall_s": wall,
                "answered": answered,
                "errors": errors,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

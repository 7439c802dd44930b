"""Client CPU per request: agora's openai-http path vs its litellm path, against one mock server.

The server runs in its own process (50 ms latency, no cap), so only the client's CPU is measured:
``time.process_time()`` over N requests at concurrency C, divided by N. Both paths run in this
one process, one after the other, so their ratio holds on a noisy machine.

    python -m bench.client_cpu --requests 2000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from engine.inference.litellm_client import LiteLLMClient, import_litellm
from engine.inference.openai_http import OpenAIHTTPClient
from engine.protocols import LLMClient
from engine.records import Message, Request

PROMPT = (
    "You are resident #5.\n\nYou live in district 2 (30 residents, density 0.60); "
    "your satisfaction is 0.900.\n"
    "- move to district 5 (20 residents): your satisfaction 0.840 (change -0.060); "
    "city welfare change +0.400"
)


def start_server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "mock-server",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", process.stdout.readline())
    assert match, "the mock server did not start"
    return process, match.group(1)


async def measure(client: LLMClient, requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) for ``requests`` completions at ``concurrency``."""
    pending = iter(range(requests))

    async def worker() -> None:
        for seed in pending:
            await client.complete(
                Request(
                    agent_id=5,
                    tick=0,
                    seed=seed,
                    messages=(Message("system", "rules"), Message("user", PROMPT)),
                )
            )

    await asyncio.gather(*(worker() for _ in range(min(concurrency, 16))))  # warm-up connections
    pending = iter(range(requests))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall


async def run(url: str, requests: int, concurrency: int) -> dict[str, tuple[float, float]]:
    import_litellm()  # its import time is not per-request CPU
    results = {}
    fast = OpenAIHTTPClient(
        [url], "mock", api_key=None, timeout_s=30, connections=concurrency, json_mode=True
    )
    results["openai-http"] = await measure(fast, requests, concurrency)
    await fast.aclose()
    slow = LiteLLMClient("mock", [url], api_key=None, timeout_s=30, json_mode=True)
    results["litellm"] = await measure(slow, requests, concurrency)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/client_cpu.md"))
    args = parser.parse_args()
    process, url = start_server(args.latency_ms)
    try:
        import uvloop

        results = uvloop.run(run(url, args.requests, args.concurrency))
    finally:
        process.terminate()
        process.wait(timeout=10)
    per = {name: cpu / args.requests * 1000 for name, (cpu, _) in results.items()}
    lines = [
        "# Client CPU per request",
        "",
        f"{args.requests} requests at concurrency {args.concurrency} against `agora mock-server` "
        f"({args.latency_ms:g} ms latency) on 127.0.0.1; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores. Measured in one run.",
        "",
        "| path | client CPU per request (ms) | wall (s) |",
        "|---|---|---|",
    ]
    for name, (_, wall) in results.items():
        lines.append(f"| {name} | {per[name]:.3f} | {wall:.2f} |")
    ratio = per["litellm"] / per["openai-http"]
    lines += ["", f"litellm / openai-http: **{ratio:.1f}×** the CPU per request."]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

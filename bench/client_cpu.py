"""Client CPU per request: agora's openai-http and litellm paths vs Mesa-LLM's, one mock server.

The server runs in its own process (50 ms latency, no cap), so only the client's CPU is measured:
``time.process_time()`` over N requests at concurrency C, divided by N. agora's two paths run in
this one process, one after the other; Mesa-LLM 0.2.0's own call path (``ModuleLLM.agenerate``,
see ``bench/peers/mesa_llm_client.py``) runs right after them in the peers' venv against the
same server, measuring its own process the same way. All rows come from one run and are
reported as ratios to openai-http, so they hold on a noisy machine.

    python -m bench.client_cpu --requests 2000 --concurrency 64
    python -m bench.client_cpu --no-mesa-llm        # agora's paths only, no peers' venv
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from agora.engine.inference.litellm_client import LiteLLMClient, import_litellm
from agora.engine.inference.openai_http import OpenAIHTTPClient
from agora.engine.protocols import LLMClient
from agora.engine.records import Message, Request
from bench.peers.setup import ensure_peers_venv
from bench.scheduling import start_mock_server

PROMPT = (
    "You are resident #5.\n\nYou live in district 2 (30 residents, density 0.60); "
    "your satisfaction is 0.900.\n"
    "- move to district 5 (20 residents): your satisfaction 0.840 (change -0.060); "
    "city welfare change +0.400"
)


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
    results: dict[str, tuple[float, float]] = {}
    fast = OpenAIHTTPClient(
        [url], "mock", api_key=None, timeout_s=30, connections=concurrency, json_mode=True
    )
    results["openai-http"] = await measure(fast, requests, concurrency)
    await fast.aclose()
    slow = LiteLLMClient("mock", [url], api_key=None, timeout_s=30, json_mode=True)
    results["litellm"] = await measure(slow, requests, concurrency)
    return results


MESA_LLM_SCRIPT = Path(__file__).resolve().parent / "peers" / "mesa_llm_client.py"


def run_mesa_llm(
    python: Path, url: str, requests: int, concurrency: int
) -> tuple[float, float, dict[str, Any]]:
    """(CPU seconds, wall seconds, its report) for Mesa-LLM's call path, in the peers' venv."""
    result = subprocess.run(
        [
            str(python),
            str(MESA_LLM_SCRIPT),
            "--url",
            url,
            "--requests",
            str(requests),
            "--concurrency",
            str(concurrency),
            "--system",
            "rules",
            "--prompt",
            PROMPT,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mesa-llm client failed:\n{result.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if report["answered"] != requests:
        raise RuntimeError(
            f"mesa-llm client: {report['answered']} of {requests} answered; {report['errors']}"
        )
    return float(report["cpu_s"]), float(report["wall_s"]), report


def run_client_cpu(
    requests: int = 2000,
    concurrency: int = 64,
    latency_ms: float = 50.0,
    include_mesa_llm: bool = True,
) -> dict[str, Any]:
    """Measure 2: client CPU per decision; rows for each path, ratios to openai-http."""
    peers = ensure_peers_venv() if include_mesa_llm else None
    process, url = start_mock_server(latency_ms)
    mesa_report: dict[str, Any] = {}
    try:
        import uvloop

        results = uvloop.run(run(url, requests, concurrency))
        if peers is not None:
            cpu, wall, mesa_report = run_mesa_llm(peers.python, url, requests, concurrency)
            results["mesa-llm"] = (cpu, wall)
    finally:
        process.terminate()
        process.wait(timeout=10)
    peer_versions: dict[str, str] = mesa_report.get("versions", {})
    subjects = {
        "openai-http": "agora openai-http",
        "litellm": "agora litellm",
        "mesa-llm": f"mesa-llm {peer_versions.get('mesa-llm')}",
    }
    notes = {
        "openai-http": "aiohttp straight to /chat/completions; uvloop",
        "litellm": f"litellm {version('litellm')} acompletion; uvloop",
        "mesa-llm": "ModuleLLM.agenerate: tenacity around litellm "
        f"{peer_versions.get('litellm')} acompletion; asyncio, peers' venv",
    }
    base = results["openai-http"][0] / requests * 1000
    rows = []
    for name, (cpu, wall) in results.items():
        per = cpu / requests * 1000
        rows.append(
            {
                "measure": "client CPU per decision",
                "subject": subjects[name],
                "value": per,
                "unit": "ms CPU/request",
                "ratio": per / base,
                "ratio_to": subjects["openai-http"],
                "wall_s": wall,
                "notes": notes[name],
            }
        )
    settings = {"requests": requests, "concurrency": concurrency, "latency_ms": latency_ms}
    versions = {"python": platform.python_version(), "litellm": version("litellm")}
    if peers is not None:
        versions |= {f"peers {k}": v for k, v in peers.versions.items()}
    result: dict[str, Any] = {
        "measure": "client CPU per decision",
        "rows": rows,
        "settings": settings,
        "versions": versions,
        "peers_install_s": None if peers is None else peers.install_s,
    }
    result["markdown"] = markdown(result)
    return result


def markdown(result: dict[str, Any]) -> str:
    settings = result["settings"]
    lines = [
        "# Client CPU per request",
        "",
        f"{settings['requests']} requests at concurrency {settings['concurrency']} against "
        f"`agora mock-server` ({settings['latency_ms']:g} ms latency) on 127.0.0.1; "
        f"Python {platform.python_version()}, {os.cpu_count()} cores. Measured in one run.",
        "",
        "| path | client CPU per request (ms) | × openai-http | wall (s) | how |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['subject']} | {row['value']:.3f} | {row['ratio']:.1f}× | "
            f"{row['wall_s']:.2f} | {row['notes']} |"
        )
    lines.append("")
    for row in result["rows"][1:]:
        lines.append(
            f"{row['subject']} / openai-http: **{row['ratio']:.1f}×** the CPU per request."
        )
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines += ["", f"Versions: {versions}."]
    if result["peers_install_s"] is not None:
        lines.append(f"Peers' venv installed in this run in {result['peers_install_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--no-mesa-llm", action="store_true", help="leave out the Mesa-LLM row (no peers' venv)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/client_cpu.md"))
    args = parser.parse_args()
    result = run_client_cpu(
        args.requests, args.concurrency, args.latency_ms, include_mesa_llm=not args.no_mesa_llm
    )
    text: str = result["markdown"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

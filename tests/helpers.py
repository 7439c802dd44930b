"""Helpers shared by the tests: running the CLI as a user would, and reading logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from agora.engine.records import TIMING_FIELDS

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "runs" / "schelling_city.toml"


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "agora.engine.cli", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def records(log: Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in log.read_bytes().splitlines()]


def without_timing(value: Any) -> Any:
    """A record with every wall-clock field removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def of_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in items if r["kind"] == kind]


def logged_requests(items: list[dict[str, Any]]) -> int:
    """Every request a run's log accounts for: its decisions' and its endpoint probes'."""
    probes = sum(
        facts.get("probe", {}).get("requests", 0)
        for header in of_kind(items, "run")
        for facts in header.get("endpoints", {}).values()
    )
    return probes + sum(d["requests"] for d in of_kind(items, "decision"))


def one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A run refused as the standards say: exit 2, one line on stderr naming the needles."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]

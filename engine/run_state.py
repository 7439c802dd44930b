"""Where a run's directory stands, and whether it was made with a given config: what a rerun
of a sweep, or ``agora run --continue``, decides by (skip, resume, or refuse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

from agora.engine.log import LOG_NAME
from agora.engine.runner import SUMMARY_NAME


class RunState(msgspec.Struct, frozen=True):
    """Where a run's directory stands: ``new``, ``completed``, ``stopped`` (by its budget: not
    resumed, which would spend another tick), ``unfinished`` (a crash, Ctrl-C: resumed),
    ``errors`` (completed, but some decisions ended in an error) or ``failed`` (too many did,
    or the run broke): both resumed with their errored decisions asked again."""

    state: Literal["new", "completed", "stopped", "unfinished", "errors", "failed"]
    detail: str = ""
    errors: int = 0


def state_of(run_dir: Path) -> RunState:
    """From the run's summary, or, when that is missing or unreadable (a stop between the
    log's last line and the summary), from the log's last record if it is the run's end."""
    if not (run_dir / LOG_NAME).exists():
        return RunState("new")
    data = _summary(run_dir / SUMMARY_NAME) or _end_record(run_dir / LOG_NAME) or {}
    status, reason = data.get("status"), data.get("reason") or ""
    errors = int(data.get("errors", 0) or 0)
    if status == "completed":
        return RunState("errors" if errors else "completed", errors=errors)
    if status == "failed":
        return RunState("failed", reason, errors=errors)
    if status == "stopped" and reason != "interrupted":
        return RunState("stopped", reason, errors=errors)
    return RunState("unfinished")


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return data if isinstance(data, dict) else None


def _end_record(log: Path, tail: int = 65536) -> dict[str, Any] | None:
    """The log's last line when it is a whole ``end`` record (a run's end is its last line)."""
    try:
        with open(log, "rb") as file:
            file.seek(max(0, file.seek(0, 2) - tail))
            lines = file.read().splitlines()
    except OSError:
        return None
    last = next((line for line in reversed(lines) if line.strip()), b"")
    try:
        record = msgspec.json.decode(last)
    except msgspec.DecodeError:
        return None
    return record if isinstance(record, dict) and record.get("kind") == "end" else None


def logged_config(run_dir: Path) -> dict[str, Any] | None:
    """The resolved config in a run's log header, or ``None`` when it cannot be read."""
    try:
        with open(run_dir / LOG_NAME, "rb") as file:
            header = msgspec.json.decode(file.readline())
    except (OSError, msgspec.DecodeError):
        return None
    config = header.get("config") if isinstance(header, dict) else None
    return config if isinstance(config, dict) else None


def config_change(run_dir: Path, resolved: dict[str, Any]) -> str | None:
    """The first field where ``resolved`` differs from the config the run in ``run_dir`` was
    made with (``run.out`` aside), or None; compared as the log holds it (JSON: a tuple is a
    list there)."""
    logged = logged_config(run_dir)
    if logged is None:
        return "its log header cannot be read"
    return first_difference(logged, msgspec.json.decode(msgspec.json.encode(resolved)), "")


def first_difference(old: Any, new: Any, path: str) -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if where == "run.out":
                continue  # where it is, not what it is
            found = first_difference(old.get(key), new.get(key), where)
            if found is not None:
                return found
        return None
    return None if old == new else f"{path}: {old!r} then, {new!r} now"


__all__ = ["RunState", "config_change", "first_difference", "logged_config", "state_of"]

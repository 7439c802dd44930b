"""Experiment sweeps: conditions × models × seeds, each a normal, resumable run of its own.

A sweep file is a run config with a ``[sweep]`` table. Every (model, condition, seed) gets the
config with the model's then the condition's ``set`` fields applied (then the command line's),
its seed, and its own directory ``<out>/<model>/<condition>/seed<seed>``. Every combination is
checked before anything runs, so a typo in the last condition costs nothing.

Rerunning a sweep skips runs whose summary says completed with no errored decision, resumes
runs that stopped (a crash, Ctrl-C), and asks again the errored decisions of runs that failed
or completed with errors (``agora resume --retry-errors``), so a sweep killed at any point, or
run against a server that was down, is finished by running it again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from agora.engine.config import (
    ConfigError,
    InferenceSection,
    apply_overrides,
    check,
    load_backend,
    read_toml,
)
from agora.engine.replay import ReplayError
from agora.engine.resume import ResumeError, prepare_resume
from agora.engine.run_state import config_change as run_config_change
from agora.engine.run_state import logged_config, state_of
from agora.engine.runner import RunPlan, execute, plan_at

MANIFEST_NAME = "sweep.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Variant(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A model or a condition: a name (used in paths and tables) and the fields it sets."""

    name: str
    set: dict[str, Any] = msgspec.field(default_factory=dict)
    description: str = ""


class AnalysisSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How ``agora report`` analyses the sweep (kept in the manifest so the report needs no
    config)."""

    # Equilibrium values are the mean of the last this many ticks of each run.
    equilibrium_ticks: Annotated[int, msgspec.Meta(ge=1)] = 10
    # Tick metrics drawn over time and tabled at equilibrium; empty = the world's choice.
    metrics: list[str] = msgspec.field(default_factory=list)
    # Reasonings coded per model × condition (a seeded sample; both coders code the same ones).
    coding_sample: Annotated[int, msgspec.Meta(ge=1)] = 300
    # Example quotes per code and group in the report.
    quotes: Annotated[int, msgspec.Meta(ge=0)] = 2
    # An [inference] table for the LLM judge coder; without it only the codebook coder runs.
    judge: dict[str, Any] | None = None


class SweepSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    models: list[Variant]
    conditions: list[Variant]
    seeds: list[int]
    name: str | None = None
    # Runs in flight at once. They share one event loop: against servers they overlap their
    # waiting; offline runs are CPU-bound and simply take turns.
    parallel: Annotated[int, msgspec.Meta(ge=1)] = 4
    out: str | None = None
    analysis: AnalysisSection = msgspec.field(default_factory=AnalysisSection)


@dataclass(frozen=True)
class SweepRun:
    model: str
    condition: str
    seed: int
    plan: RunPlan

    @property
    def label(self) -> str:
        return f"{self.model}/{self.condition}/seed{self.seed}"


@dataclass(frozen=True)
class SweepPlan:
    name: str
    out_dir: Path
    section: SweepSection
    runs: tuple[SweepRun, ...]


RunStatus = Literal["pending", "completed", "skipped", "resumed", "stopped", "errors", "failed"]


class RunOutcome(msgspec.Struct, frozen=True):
    model: str
    condition: str
    seed: int
    dir: str
    status: RunStatus
    detail: str = ""
    decisions: int = 0
    wall_s: float = 0.0


class Manifest(msgspec.Struct):
    """``sweep.json``: what the sweep is made of and how each run ended, for reports."""

    name: str
    models: list[Variant]
    conditions: list[Variant]
    seeds: list[int]
    runs: list[RunOutcome]
    analysis: AnalysisSection = msgspec.field(default_factory=AnalysisSection)


def plan_sweep(
    config_path: Path,
    overrides: Mapping[str, Any],
    *,
    out: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> SweepPlan:
    raw = read_toml(config_path)
    if "sweep" not in raw:
        raise ConfigError(
            f"sweep: {config_path} has no [sweep] table; a sweep names its models, conditions "
            "and seeds (see runs/schelling_altruism.toml)"
        )
    section = check(raw.pop("sweep"), SweepSection, "sweep")
    _check_names(section)
    if section.analysis.judge is not None:
        # Checked now, so a typo in the judge does not surface after hours of runs.
        judge = check(section.analysis.judge, InferenceSection, "sweep.analysis.judge")
        load_backend(judge.backend, "sweep.analysis.judge.backend")
    name = section.name or str(raw.get("run", {}).get("name", config_path.stem))
    out_dir = Path(out or section.out or f"runs/out/{name}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"sweep.out: {out_dir} is a file, not a directory")
    runs = []
    for model in section.models:
        for condition in section.conditions:
            for seed in section.seeds:
                where = f"sweep model {model.name!r}, condition {condition.name!r}"
                merged = {**model.set, **condition.set, **overrides, "run.seed": seed}
                merged.pop("run.out", None)
                try:
                    run_raw = apply_overrides(raw, merged)
                    run_dir = out_dir / model.name / condition.name / f"seed{seed}"
                    run_id = f"{name}-{model.name}-{condition.name}-seed{seed}"
                    plan = plan_at(run_raw, run_dir, run_id, environ)
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
                runs.append(SweepRun(model.name, condition.name, seed, plan))
    return SweepPlan(name=name, out_dir=out_dir, section=section, runs=tuple(runs))


def _check_names(section: SweepSection) -> None:
    for kind, variants in (("models", section.models), ("conditions", section.conditions)):
        if not variants:
            raise ConfigError(f"sweep.{kind}: empty; list at least one [[sweep.{kind}]]")
        seen: set[str] = set()
        for index, variant in enumerate(variants):
            if not _NAME.fullmatch(variant.name):
                raise ConfigError(
                    f"sweep.{kind}[{index}].name: {variant.name!r} is used in paths; use "
                    "letters, digits, '_', '-', '.'"
                )
            if variant.name in seen:
                raise ConfigError(f"sweep.{kind}[{index}].name: {variant.name!r} appears twice")
            seen.add(variant.name)
    if not section.seeds:
        raise ConfigError("sweep.seeds: empty; give at least one seed, e.g. seeds = [1, 2, 3]")
    if len(set(section.seeds)) != len(section.seeds):
        raise ConfigError("sweep.seeds: a seed appears twice")


def config_change(run: SweepRun) -> str | None:
    """The first field where the planned config differs from the one the run was made with."""
    if logged_config(run.plan.out_dir) is None:
        return None
    return run_config_change(run.plan.out_dir, run.plan.resolved)


def check_unchanged(plan: SweepPlan) -> None:
    """Refuse to mix results of different configs under one sweep directory."""
    for run in plan.runs:
        if state_of(run.plan.out_dir).state == "new":
            continue
        change = config_change(run)
        if change is not None:
            raise ConfigError(
                f"{run.label}: {run.plan.out_dir} holds a run made with another config "
                f"({change}); give the sweep another --out, or remove that run"
            )


OnRunDone = Callable[[int, int, SweepRun, RunOutcome], None]


async def run_sweep(
    plan: SweepPlan,
    *,
    on_run_done: OnRunDone | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Manifest:
    """Run every run of the plan not yet completed, ``parallel`` at a time. The manifest is
    written first (every run pending) and again as each run ends, so a killed sweep still has
    one."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(plan.section.parallel)
    outcomes = [
        RunOutcome(r.model, r.condition, r.seed, _relative(r, plan), status="pending")
        for r in plan.runs
    ]
    manifest = Manifest(
        name=plan.name,
        models=plan.section.models,
        conditions=plan.section.conditions,
        seeds=plan.section.seeds,
        runs=outcomes,
        analysis=plan.section.analysis,
    )
    write_manifest(plan.out_dir, manifest)
    done = [0]

    async def one(index: int, run: SweepRun) -> None:
        async with gate:
            started = clock()
            outcome = await _run_one(run, outcomes[index])
            if outcome.status != "skipped":
                outcome = msgspec.structs.replace(outcome, wall_s=round(clock() - started, 3))
        outcomes[index] = outcome
        write_manifest(plan.out_dir, manifest)
        done[0] += 1
        if on_run_done is not None:
            on_run_done(done[0], len(plan.runs), run, outcome)

    await asyncio.gather(*(one(i, run) for i, run in enumerate(plan.runs)))
    return manifest


def _relative(run: SweepRun, plan: SweepPlan) -> str:
    return str(run.plan.out_dir.relative_to(plan.out_dir))


async def _run_one(run: SweepRun, base: RunOutcome) -> RunOutcome:
    run_dir = run.plan.out_dir
    state = state_of(run_dir)
    if state.state == "completed":
        return msgspec.structs.replace(base, status="skipped", detail="completed earlier")
    if state.state == "stopped":
        # Resuming would run another tick past the budget: say so and leave it.
        return msgspec.structs.replace(
            base, status="stopped", detail=f"{state.detail} (continue: agora resume {run_dir})"
        )
    reasked = 0
    try:
        if state.state != "new":  # unfinished, errors or failed: errored decisions asked again
            plan, resumption = prepare_resume(run_dir, retry_errors=True)
            reasked = resumption.reasked
            summary = await execute(plan, resume=resumption)
            resumed = True
        else:
            summary = await execute(run.plan)
            resumed = False
    except asyncio.CancelledError:
        raise
    except (ResumeError, ReplayError, ConfigError, OSError) as exc:
        return msgspec.structs.replace(base, status="failed", detail=str(exc))
    except Exception as exc:  # one run's fault must not take the sweep's other runs down
        return msgspec.structs.replace(base, status="failed", detail=f"{type(exc).__name__}: {exc}")
    status: RunStatus
    detail = summary.reason or ""
    if summary.status != "completed":
        status = "stopped" if summary.status == "stopped" else "failed"
    elif summary.valid == 0 or summary.errors:
        # Decisions the provider never answered: the run is on record, but not a clean one.
        status = "errors"
        detail = f"{summary.errors} of {summary.decisions} decisions failed" + (
            f" ({detail})" if detail else ""
        )
    else:
        status = "resumed" if resumed else "completed"
        if reasked:
            detail = f"{reasked} errored decisions asked again"
    return msgspec.structs.replace(base, status=status, detail=detail, decisions=summary.decisions)


def write_manifest(out_dir: Path, manifest: Manifest) -> None:
    path = out_dir / MANIFEST_NAME
    temporary = path.with_suffix(".json.tmp")
    temporary.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    temporary.replace(path)


def read_manifest(sweep_dir: Path) -> Manifest:
    path = sweep_dir / MANIFEST_NAME
    try:
        return msgspec.json.decode(path.read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise ConfigError(f"{sweep_dir}: no {MANIFEST_NAME}; is it a sweep's directory?") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: not a sweep manifest ({exc})") from None


def is_sweep_dir(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()


def summary_line(index: int, total: int, run: SweepRun, outcome: RunOutcome) -> str:
    head = f"[{index}/{total}] {run.label}: {outcome.status}"
    if outcome.status == "skipped":
        return f"{head} ({outcome.detail})"
    if outcome.status == "failed":
        return f"{head}: {outcome.detail}"
    tail = f" ({outcome.detail})" if outcome.detail else ""
    return f"{head}, {outcome.decisions} decisions in {outcome.wall_s:.1f} s{tail}"

"""``agora report SWEEP_DIR``: one document for a whole sweep, from its runs' logs alone.

The engine's part is world-agnostic: the runs and how they ended, each tick metric over time per
model and condition (mean over seeds), last-ticks values (mean of each run's last ticks, then
mean ± sd over seeds; the world may name them, ``world_reports.LabelsReport``), and square
integer tables (behaviour matrices) summed per model and condition side by side. A world adds
its own sections through ``sweep_sections`` on its plugin (``world_reports.SweepSections``), and
the reasonings are coded when the world ships a codebook (``world_reports.HasCodebook``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agora.engine.frames import RunFrames, load_run
from agora.engine.plugins import load_plugin
from agora.engine.sweep import AnalysisSection, Manifest, read_manifest
from agora.engine.world_reports import (
    HasCodebook,
    ReportsMetrics,
    SweepSections,
    last_ticks_label,
)


@dataclass(frozen=True)
class SweepRunData:
    """One run of a sweep, loaded: what the world's sweep analysis receives."""

    model: str
    condition: str
    seed: int
    dir: Path
    frames: RunFrames

    @property
    def resolved(self) -> dict[str, Any]:
        """The run's resolved config, as its log header holds it."""
        config: dict[str, Any] = self.frames.header["config"]
        return config

    def metric_rows(self) -> list[dict[str, Any]]:
        ticks = self.frames.ticks
        if not ticks.height:
            return []
        rows: list[dict[str, Any]] = ticks.sort("tick").get_column("metrics").to_list()
        return rows


def load_sweep(sweep_dir: Path) -> tuple[Manifest, list[SweepRunData], list[str]]:
    """The manifest, the runs that completed (the only ones the statistics use), and a line
    for each run left out and why."""
    manifest = read_manifest(sweep_dir)
    runs, left_out = [], []
    for outcome in manifest.runs:
        # Always the sweep's own layout: a sweep moved or copied elsewhere reads its own runs.
        run_dir = sweep_dir / outcome.model / outcome.condition / f"seed{outcome.seed}"
        label = f"{outcome.model}/{outcome.condition}/seed{outcome.seed}"
        if not (run_dir / "log.jsonl").exists():
            left_out.append(f"{label}: no log ({outcome.status})")
            continue
        frames = load_run(run_dir)
        end = frames.end or {}
        if end.get("status") != "completed":
            left_out.append(f"{label}: {end.get('status', 'unfinished')} ({outcome.detail})")
            continue
        if frames.decisions.is_empty() or not frames.decisions.get_column("valid").any():
            left_out.append(f"{label}: no valid decision ({outcome.detail})")
            continue
        runs.append(SweepRunData(outcome.model, outcome.condition, outcome.seed, run_dir, frames))
    return manifest, runs, left_out


def last_ticks_mean(rows: Sequence[dict[str, Any]], name: str, last: int) -> float | None:
    """Mean of a scalar metric over the last ``last`` ticks (fewer if the run is shorter)."""
    values = [float(row[name]) for row in rows[-last:] if isinstance(row.get(name), int | float)]
    return float(np.mean(values)) if values else None


def write_sweep_report(sweep_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest, runs, left_out = load_sweep(sweep_dir)
    analysis = manifest.analysis
    out = sweep_dir / "report"
    out.mkdir(exist_ok=True)
    models = [m.name for m in manifest.models]
    conditions = [c.name for c in manifest.conditions]
    world_plugin = _world_plugin(runs)

    lines = [f"# Sweep {manifest.name}", ""]
    lines += _run_table(manifest, runs, models, conditions)
    if left_out:
        lines += [
            "Left out of every figure and statistic below (only completed runs with valid "
            "decisions count):",
            "",
            *[f"- {line}" for line in left_out],
            "",
        ]
    metrics = _metric_names(runs, analysis, world_plugin)

    if metrics:
        label = last_ticks_label(world_plugin)
        lines += [
            f"## {label[:1].upper()}{label[1:]} (mean of each run's last "
            f"{analysis.equilibrium_ticks} ticks; mean ± sd over seeds)",
            "",
            "| model | condition | seeds | " + " | ".join(metrics) + " |",
            "|---|---|---|" + "---|" * len(metrics),
        ]
        for model in models:
            for condition in conditions:
                group = [r for r in runs if r.model == model and r.condition == condition]
                if not group:
                    continue
                cells = []
                for name in metrics:
                    values = [
                        v
                        for r in group
                        if (v := last_ticks_mean(r.metric_rows(), name, analysis.equilibrium_ticks))
                        is not None
                    ]
                    cells.append(_mean_sd(values))
                lines.append(
                    f"| {model} | {condition} | {len(group)} | " + " | ".join(cells) + " |"
                )
        lines.append("")
        lines += _series_figures(plt, out, runs, models, conditions, metrics)

    lines += _matrix_section(plt, out, runs, models, conditions)

    if isinstance(world_plugin, SweepSections):
        for block in world_plugin.sweep_sections(runs, analysis, out):
            lines += [block, ""]

    if isinstance(world_plugin, HasCodebook):
        from agora.engine.sweep_coding import coding_section

        lines += coding_section(runs, analysis, Path(world_plugin.codebook_path), out)

    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _world_plugin(runs: Sequence[SweepRunData]) -> Any:
    if not runs:
        return None
    return load_plugin("world", str(runs[0].frames.header["world"]), "world.kind")


def _run_table(
    manifest: Manifest, runs: Sequence[SweepRunData], models: list[str], conditions: list[str]
) -> list[str]:
    by_variant = {v.name: v for v in [*manifest.models, *manifest.conditions]}
    lines = [
        f"{len(models)} models × {len(conditions)} conditions × {len(manifest.seeds)} seeds "
        f"(seeds {', '.join(map(str, manifest.seeds))}); {len(runs)} of {len(manifest.runs)} "
        "runs completed and are analysed. Invalid: answers that could not be used after the "
        "re-asks; failed: decisions the provider never answered.",
        "",
        "| model | condition | backend / model | runs | decisions | invalid | failed "
        "| last sweep |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for condition in conditions:
            group = [r for r in runs if r.model == model and r.condition == condition]
            outcomes = [o for o in manifest.runs if o.model == model and o.condition == condition]
            if not outcomes:
                continue
            decisions = sum(r.frames.decisions.height for r in group)
            invalid = failed = 0
            for r in group:
                frame = r.frames.decisions
                if frame.height:
                    unusable = ~frame.get_column("valid")
                    errored = frame.get_column("error").is_not_null()
                    failed += int((unusable & errored).sum())
                    invalid += int((unusable & ~errored).sum())
            served = sorted(
                {f"{r.frames.header['backend']} / {r.frames.header['model']}" for r in group}
            )
            statuses = sorted({o.status for o in outcomes})
            share = f"{invalid / decisions:.1%}" if decisions else "–"
            failed_share = f"{failed / decisions:.1%}" if decisions else "–"
            lines.append(
                f"| {model} | {condition} | {', '.join(served) or '–'} | {len(group)} | "
                f"{decisions} | {share} | {failed_share} | {', '.join(statuses)} |"
            )
    described = [
        f"- **{name}**: {v.description}" for name, v in by_variant.items() if v.description
    ]
    if described:
        lines += ["", *described]
    lines.append("")
    return lines


def _metric_names(
    runs: Sequence[SweepRunData], analysis: AnalysisSection, world_plugin: Any
) -> list[str]:
    if analysis.metrics:
        return list(analysis.metrics)
    if isinstance(world_plugin, ReportsMetrics) and world_plugin.report_metrics:
        return list(world_plugin.report_metrics)
    for run in runs:
        rows = run.metric_rows()
        if rows:
            return [k for k, v in rows[0].items() if isinstance(v, int | float)]
    return []


def _series_figures(
    plt: Any,
    out: Path,
    runs: Sequence[SweepRunData],
    models: list[str],
    conditions: list[str],
    metrics: list[str],
) -> list[str]:
    lines = ["## Metrics over ticks (mean over seeds; band: min–max)", ""]
    for name in metrics:
        figure, axes = plt.subplots(
            1, len(models), figsize=(4.2 * len(models), 3.0), sharey=True, squeeze=False
        )
        for ax, model in zip(axes[0], models, strict=True):
            for condition in conditions:
                series = [
                    [float(row[name]) for row in r.metric_rows() if name in row]
                    for r in runs
                    if r.model == model and r.condition == condition
                ]
                series = [s for s in series if s]
                if not series:
                    continue
                # Each tick over the seeds that reached it (runs may differ in length).
                length = max(len(s) for s in series)
                table = np.full((len(series), length), np.nan)
                for row, values in enumerate(series):
                    table[row, : len(values)] = values
                ticks = np.arange(length)
                ax.plot(ticks, np.nanmean(table, axis=0), label=condition, linewidth=1.4)
                ax.fill_between(
                    ticks, np.nanmin(table, axis=0), np.nanmax(table, axis=0), alpha=0.15
                )
            ax.set_title(model, fontsize=10)
            ax.set_xlabel("tick")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(name)
        axes[0][-1].legend(fontsize=8)
        figure.tight_layout()
        file = f"{name}_over_ticks.png"
        figure.savefig(out / file, dpi=110)
        plt.close(figure)
        lines += [f"![{name} over ticks]({file})", ""]
    return lines


def _matrix_section(
    plt: Any, out: Path, runs: Sequence[SweepRunData], models: list[str], conditions: list[str]
) -> list[str]:
    names = _square_metrics(runs)
    lines: list[str] = []
    for name in names:
        lines += [f"## `{name}` summed over ticks and seeds", ""]
        sums: dict[tuple[str, str], np.ndarray] = {}
        for model in models:
            for condition in conditions:
                total: np.ndarray | None = None
                for run in runs:
                    if run.model != model or run.condition != condition:
                        continue
                    for row in run.metric_rows():
                        table = np.asarray(row.get(name, []), dtype=np.int64)
                        if table.ndim == 2:
                            total = table if total is None else total + table
                if total is not None:
                    sums[(model, condition)] = total
        if not sums:
            continue
        figure, axes = plt.subplots(
            len(models),
            len(conditions),
            figsize=(2.6 * len(conditions), 2.4 * len(models)),
            squeeze=False,
        )
        for i, model in enumerate(models):
            for j, condition in enumerate(conditions):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                counts = sums.get((model, condition))
                if counts is None:
                    ax.axis("off")
                    continue
                shares = counts / max(1, int(counts.sum()))
                ax.imshow(shares, cmap="Blues", vmin=0, vmax=max(1e-9, float(shares.max())))
                for (r, c), value in np.ndenumerate(shares):
                    ax.text(c, r, f"{value:.1%}", ha="center", va="center", fontsize=7)
                ax.set_title(f"{model}\n{condition}", fontsize=8)
        figure.tight_layout()
        file = f"{name}_matrices.png"
        figure.savefig(out / file, dpi=110)
        plt.close(figure)
        lines += [f"![{name} per model and condition]({file})", ""]
        lines += ["| model | condition | " + name + " (rows, as logged) |", "|---|---|---|"]
        for (model, condition), summed in sums.items():
            rows = " / ".join(" ".join(str(int(v)) for v in row) for row in summed)
            lines.append(f"| {model} | {condition} | {rows} |")
        lines.append("")
    return lines


def _square_metrics(runs: Sequence[SweepRunData]) -> list[str]:
    for run in runs:
        rows = run.metric_rows()
        if rows:
            return [
                k
                for k, v in rows[0].items()
                if isinstance(v, list)
                and v
                and all(isinstance(r, list) and len(r) == len(v) for r in v)
            ]
    return []


def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"

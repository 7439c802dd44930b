"""FairMindSim's sections of ``agora report``, for one run and for a sweep.

The Table-2 row per dataset (a run's model, or each model of a sweep), the model fits
(Tables 3/4/6), the punishment surface over inequity × cost, the belief trajectories of agents
fitted by BREM, and entropy bars. The fits are those ``agora fit DIR --out DIR/fit`` saved when
they are there and match the data (the permutation test and recovery come only from there);
otherwise the report fits in place, with cross-validation but neither of those two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from agora.worlds.fairmind import metrics
from agora.worlds.fairmind.datasets import Dataset, from_run, from_sweep_runs
from agora.worlds.fairmind.fit_markdown import (
    data_section,
    model_tables,
    recovery_tables,
    validation_tables,
)
from agora.worlds.fairmind.fit_report import (
    RESULTS_NAME,
    FitOptions,
    FitResults,
    analyse,
    read_results,
)
from agora.worlds.fairmind.models import brem_beliefs
from agora.worlds.fairmind.world import AFFECT_COLUMNS

FIT_DIR: Final = "fit"  # where `make fairmind` has `agora fit` write, beside the runs
BELIEF_AGENTS: Final = 6  # trajectories drawn per dataset
# The paper's human baseline (Table 2): composite emotional entropy, in bits.
HUMAN_ENTROPY: Final = 1.0759
REPORT_OPTIONS: Final = FitOptions(permutations=0, recover=False)


def run_sections(frames: Any, run_dir: Path, out: Path) -> list[str]:
    dataset = from_run(run_dir, frames, REPORT_OPTIONS.min_rounds)
    human = float(frames.header.get("world_info", {}).get("human_punish_rate", 0.3506))
    return _sections([dataset], run_dir, out, human, [])


def sweep_sections(runs: Sequence[Any], out: Path) -> list[str]:
    if not runs:
        return []
    datasets = from_sweep_runs(runs, REPORT_OPTIONS.min_rounds)
    human = float(runs[0].frames.header.get("world_info", {}).get("human_punish_rate", 0.3506))
    return _sections(datasets, out.parent, out, human, [])


def _sections(
    datasets: Sequence[Dataset], data_dir: Path, out: Path, human: float, left_out: list[str]
) -> list[str]:
    lines = _table2(datasets, human)
    fittable = [d for d in datasets if d.agents]
    if fittable:
        results, saved = _fits(fittable, data_dir, left_out)
        lines += [
            "## FairMindSim model fits",
            "",
            (
                f"From `{data_dir / FIT_DIR / RESULTS_NAME}` (written by `agora fit`)."
                if saved
                else f"Fitted for this report (seed 0, no permutation test, no recovery); "
                f"`agora fit {data_dir} --out {data_dir / FIT_DIR} --recover` adds both and "
                "this report then shows them."
            ),
            "",
            *data_section(results),
            *model_tables(results),
            *validation_tables(results),
        ]
        if results.recovery is not None:
            lines += recovery_tables(results.recovery)
        lines += _beliefs_figure(fittable, results, out)
    lines += _surface_figure(datasets, out)
    lines += _entropy_figure(datasets, out)
    return ["\n".join(lines)]


def _fits(
    datasets: Sequence[Dataset], data_dir: Path, left_out: list[str]
) -> tuple[FitResults, bool]:
    saved = read_results(data_dir / FIT_DIR / RESULTS_NAME)
    if saved is not None and _matches(saved, datasets):
        return saved, True
    return analyse(datasets, REPORT_OPTIONS, source=str(data_dir), left_out=left_out), False


def _matches(saved: FitResults, datasets: Sequence[Dataset]) -> bool:
    """The saved fits are of these data: same datasets, agents and trial counts."""
    ours = [(d.name, d.agents, d.trials.height) for d in datasets]
    theirs = [(d.name, d.agents, d.trials) for d in saved.datasets]
    return ours == theirs


def _table2(datasets: Sequence[Dataset], human: float) -> list[str]:
    lines = [
        "## FairMindSim: Table 2",
        "",
        f"Punishment rate over unfair rounds (eq. 1), action difference from the human rate "
        f"{human:.4f} (eq. 2), composite emotional entropy (eq. 3: 6 affect series × 20 bins "
        f"on [−100, 100], bits, per agent then averaged; human ≈ {HUMAN_ENTROPY}).",
        "",
        "| dataset | answered by | agents | trials | missed rounds | punishment rate "
        "| action diff | entropy (bits) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in datasets:
        played = d.all_trials
        row = metrics.table2_row(played, human) if played.height else {}
        lines.append(
            f"| {d.name} | {d.source} | {played['agent'].n_unique() if played.height else 0} | "
            f"{played.height} "
            f"| {sum(d.missed.values())} | {_num(row.get('punishment_rate'))} "
            f"| {_num(row.get('action_diff'))} | {_num(row.get('entropy'))} |"
        )
    if any(d.source == "offline" for d in datasets):
        lines += [
            "",
            "`offline` datasets are the world's behavioural agents, not an LLM.",
        ]
    return [*lines, ""]


def _num(value: Any, digits: int = 3) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def _surface_figure(datasets: Sequence[Dataset], out: Path) -> list[str]:
    shown = [d for d in datasets if d.all_trials.height]
    if not shown:
        return []
    plt = _pyplot()
    rows, cols = _grid(len(shown))
    figure, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    image = None
    for ax, d in zip(axes.flat, shown, strict=False):
        surface = metrics.punishment_surface(d.all_trials).filter(pl.col("inequity") > 0)
        inequities = sorted(set(surface["inequity"].to_list()))
        costs = sorted(set(surface["cost"].to_list()))
        grid = np.full((len(inequities), len(costs)), np.nan)
        for row in surface.iter_rows(named=True):
            grid[inequities.index(row["inequity"]), costs.index(row["cost"])] = row["rate"]
        image = ax.imshow(grid, origin="lower", cmap="Reds", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(costs)), [f"{c:g}" for c in costs], fontsize=7)
        ax.set_yticks(range(len(inequities)), [f"{e:.2f}" for e in inequities], fontsize=7)
        ax.set_xlabel("cost of punishing")
        ax.set_ylabel("inequity E = (P1 − P2)/30")
        ax.set_title(d.name, fontsize=9)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label="punishment rate")
    figure.savefig(out / "fairmind_surface.png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [
        "## Punishment surface",
        "",
        "The punishment rate in each unfair (inequity, cost) cell, over every agent's rounds.",
        "",
        "![punishment surface](fairmind_surface.png)",
        "",
    ]


def _beliefs_figure(datasets: Sequence[Dataset], results: FitResults, out: Path) -> list[str]:
    plt = _pyplot()
    rows, cols = _grid(len(datasets))
    figure, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False, sharey=True
    )
    drawn = 0
    for ax, d in zip(axes.flat, datasets, strict=False):
        result = next((r for r in results.datasets if r.name == d.name), None)
        brem = {str(f.agent): f for f in (result.fits if result else []) if f.model == "BREM"}
        trials = d.to_trials()
        for a, agent in enumerate(trials.agents[:BELIEF_AGENTS]):
            fitted = brem.get(str(agent))
            if fitted is None:
                continue
            theta = [fitted.params[name] for name in ("beta1", "beta2", "c", "eta")]
            belief = brem_beliefs(theta, trials.agent(a))[0]
            ax.plot(range(belief.size), belief, linewidth=1, label=f"{agent} (η̂ {theta[3]:.2f})")
            drawn += 1
        ax.set_title(d.name, fontsize=9)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes.flat[0].set_ylabel("belief bel_j (bel_0 = 1)")
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(out / "fairmind_beliefs.png", dpi=100)
    plt.close(figure)
    if not drawn:
        return []
    return [
        "## Belief trajectories",
        "",
        f"bel_j of the first {BELIEF_AGENTS} agents of each dataset under their fitted BREM "
        "parameters, replayed over their own choices.",
        "",
        "![belief trajectories](fairmind_beliefs.png)",
        "",
    ]


def _entropy_figure(datasets: Sequence[Dataset], out: Path) -> list[str]:
    shown = [
        d for d in datasets if d.all_trials.height and AFFECT_COLUMNS[0] in d.all_trials.columns
    ]
    if not shown:
        return []
    plt = _pyplot()
    width = 0.8 / len(shown)
    figure, ax = plt.subplots(figsize=(8, 3.2))
    for i, d in enumerate(shown):
        per_series = []
        for column in AFFECT_COLUMNS:
            values = [
                metrics.series_entropy(group[column].to_numpy())
                for _, group in d.all_trials.group_by("agent", maintain_order=True)
            ]
            per_series.append((float(np.nanmean(values)), float(np.nanstd(values))))
        composite = metrics.emotional_entropy(d.all_trials) or 0.0
        means = [m for m, _ in per_series] + [composite]
        errors = [s for _, s in per_series] + [0.0]
        x = np.arange(len(means)) + (i - (len(shown) - 1) / 2) * width
        ax.bar(x, means, width, yerr=errors, capsize=2, label=d.name)
    ax.axhline(HUMAN_ENTROPY, color="black", linestyle="--", linewidth=1, label="human (paper)")
    labels = [c.replace("_", "\n") for c in AFFECT_COLUMNS] + ["composite"]
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("entropy (bits, per agent)")
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "fairmind_entropy.png", dpi=100)
    plt.close(figure)
    return [
        "## Emotional entropy",
        "",
        "Per affect series, each agent's entropy (20 bins on [−100, 100]) averaged over agents "
        "(error bars: sd over agents), and the composite (eq. 3).",
        "",
        "![entropy](fairmind_entropy.png)",
        "",
    ]

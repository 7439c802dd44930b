"""ProSim's report: each study's section of ``agora report`` on its run, and the one report
of all three studies that ``agora prosim-report`` (``make prosim``) writes.

Every section says whether its answers came from a model or from the offline behavioural
model (``offline.py``), whose effects are assumptions, never findings about LLMs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from agora.worlds.prosim import analysis
from agora.worlds.prosim.texts import INTERVENTIONS

MEDIATION_SEED: Final = 0
MEDIATION_RESAMPLES: Final = 1000


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _f(value: float, digits: int = 2) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def source_line(frames: Any, offline: str = "worlds/prosim/offline.py") -> str:
    header = frames.header
    inference = header.get("config", {}).get("inference", {})
    backend = str(inference.get("backend", "?"))
    if backend == "offline":
        return (
            f"Answers from the **offline behavioural model** (`{offline}`), not "
            "an LLM: its effects are the model's assumptions, shown so the analyses can be "
            "checked, not findings."
        )
    return f"Answers from `{inference.get('model', '?')}` over the `{backend}` backend."


# ---- Study 1 ---------------------------------------------------------------------------------


def scenario_sections(frames: Any, out: Path) -> list[str]:
    ratings = frames.of("prosim_rating")
    lines = ["## ProSim Study 1: willingness by scenario × policy", "", source_line(frames), ""]
    if ratings.is_empty():
        return [*lines, "No answered items.", ""]
    order = [i for i in INTERVENTIONS if i in set(ratings["intervention"].to_list())]
    seen = set(ratings["scenario"].to_list())
    listed = frames.header.get("world_info", {}).get("scenarios", [])
    scenarios = [s for s in listed if s in seen] + sorted(seen - set(listed))
    table = analysis.willingness_table(ratings)
    cell = {(s, i): f"{_f(m)} [{_f(lo)}, {_f(hi)}]" for s, i, m, lo, hi, _ in table.iter_rows()}
    lines += [
        f"Mean willingness (1–7) with its 95% t interval; {ratings['agent'].n_unique()} agents.",
        "",
        "| scenario | " + " | ".join(order) + " |",
        "|---|" + "---|" * len(order),
    ]
    lines += [
        f"| {s} | " + " | ".join(cell.get((s, i), "–") for i in order) + " |" for s in scenarios
    ]
    effects = analysis.intervention_effects(ratings)
    if not effects.is_empty():
        lines += [
            "",
            "Each intervention against no policy (per agent: its mean difference over the "
            "scenarios; then the mean over agents, 95% t interval):",
            "",
            "| intervention | difference | 95% CI | agents |",
            "|---|---|---|---|",
        ]
        rank = {name: k for k, name in enumerate(INTERVENTIONS)}
        for name, diff, lo, hi, n in sorted(effects.iter_rows(), key=lambda r: rank[r[0]]):
            lines.append(f"| {name} | {diff:+.2f} | [{lo:+.2f}, {hi:+.2f}] | {n} |")
    _draw_willingness(table, scenarios, order, out / "prosim_willingness.png")
    return [*lines, "", "![willingness](prosim_willingness.png)", ""]


def _draw_willingness(
    table: pl.DataFrame, scenarios: Sequence[str], order: Sequence[str], path: Path
) -> None:
    plt = _plt()
    figure, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    width = 0.8 / max(len(order), 1)
    for k, intervention in enumerate(order):
        rows = {r[0]: r for r in table.filter(pl.col("intervention") == intervention).iter_rows()}
        means = [rows[s][2] if s in rows else np.nan for s in scenarios]
        errors = [
            [rows[s][2] - rows[s][3] if s in rows else 0 for s in scenarios],
            [rows[s][4] - rows[s][2] if s in rows else 0 for s in scenarios],
        ]
        xs = np.arange(len(scenarios)) + (k - (len(order) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=np.nan_to_num(errors), capsize=2, label=intervention)
    ax.set_xticks(np.arange(len(scenarios)), scenarios, fontsize=8)
    ax.set_ylim(1, 7)
    ax.set_ylabel("willingness (1–7)")
    ax.legend(fontsize=7, ncol=len(order))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# ---- Study 2 ---------------------------------------------------------------------------------


def punishment_sections(frames: Any, out: Path) -> list[str]:
    trials = frames.of("fairmind_trial")
    lines = [
        "## ProSim Study 2: third-party punishment",
        "",
        source_line(frames, "worlds/fairmind/offline.py"),
        "",
    ]
    if trials.is_empty():
        return [*lines, "No played rounds.", ""]
    table = analysis.punishment_table(trials)
    unfair = table.filter(pl.col("inequity") > 0)
    lines += [
        f"{trials['agent'].n_unique()} judges, {len(trials)} rounds. Punishment rate per "
        "inequity (P1 − P2 of the $30) and cost y (the judge keeps $10 − y), over every "
        "round played:",
        "",
    ]
    costs = sorted(set(table["cost"].to_list()))
    lines += [
        "| inequity \\ cost | " + " | ".join(str(c) for c in costs) + " |",
        "|---|" + "---|" * len(costs),
    ]
    rate = {(i, c): r for i, c, _, _, r, _, _ in table.iter_rows()}
    for inequity in sorted(set(table["inequity"].to_list())):
        lines.append(
            f"| {inequity} | "
            + " | ".join(_f(rate[(inequity, c)]) if (inequity, c) in rate else "–" for c in costs)
            + " |"
        )
    if not unfair.is_empty():
        punished, n = int(unfair["punished"].sum()), int(unfair["n"].sum())
        lines += ["", f"Over the unfair rounds: {punished}/{n} punished ({punished / n:.3f})."]
    feedback = analysis.emotional_feedback(trials)
    lines += [
        "",
        "Emotional feedback, after − before (the feedback rating minus the appraisal rating, "
        "−200 … 200), by choice:",
        "",
        "| choice | dimension | mean | 95% CI | rounds |",
        "|---|---|---|---|---|",
    ]
    for choice, dim, mean, lo, hi, n in feedback.iter_rows():
        if n:
            lines.append(f"| {choice} | {dim} | {_f(mean, 1)} | [{_f(lo, 1)}, {_f(hi, 1)}] | {n} |")
    _draw_punishment(table, out / "prosim_punishment.png")
    return [*lines, "", "![punishment](prosim_punishment.png)", ""]


def _draw_punishment(table: pl.DataFrame, path: Path) -> None:
    plt = _plt()
    inequities = sorted(set(table["inequity"].to_list()))
    costs = sorted(set(table["cost"].to_list()))
    grid = np.full((len(inequities), len(costs)), np.nan)
    for i, c, _, _, r, _, _ in table.iter_rows():
        grid[inequities.index(i), costs.index(c)] = r
    figure, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    image = ax.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="Reds", aspect="auto")
    ax.set_xticks(range(len(costs)), [str(c) for c in costs])
    ax.set_yticks(range(len(inequities)), [str(i) for i in inequities])
    ax.set_xlabel("cost y")
    ax.set_ylabel("inequity P1 − P2")
    figure.colorbar(image, ax=ax, label="punishment rate")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# ---- Study 3 ---------------------------------------------------------------------------------


def network_sections(frames: Any, out: Path, null: Any | None = None) -> list[str]:
    days = frames.of("prosim_day")
    info = frames.header.get("world_info", {})
    agents = int(info.get("agents", days["agent"].n_unique() if not days.is_empty() else 0))
    lines = ["## ProSim Study 3: contagion of policy-induced inequity", "", source_line(frames), ""]
    if days.is_empty():
        return [*lines, "No answered days.", ""]
    changes = frames.of("prosim_change")
    curve = analysis.contagion_curve(days, changes, agents)
    seeds = [] if changes.is_empty() else sorted(changes.filter(pl.col("state") == "seed")["agent"])
    lines += [
        f"{agents} agents on a graph of {info.get('edges', '?')} edges (clustering "
        f"{info.get('clustering', '?')}, mean shortest path "
        f"{info.get('mean_shortest_path', '?')}); "
        f"seed agents {', '.join(f'#{s}' for s in seeds) or 'none'}; "
        f"{len(frames.of('prosim_delivery'))} refusals told along active edges.",
        "",
        "| day | affected share | mean willingness | mean unfairness |"
        + (" null: affected | null: willingness |" if null is not None else ""),
        "|---|---|---|---|" + ("---|---|" if null is not None else ""),
    ]
    null_curve = (
        analysis.contagion_curve(null.of("prosim_day"), null.of("prosim_change"), agents)
        if null is not None
        else None
    )
    null_rows = {r[0]: r for r in null_curve.iter_rows()} if null_curve is not None else {}
    for tick, _, w, u, _, share in curve.iter_rows():
        row = f"| {tick + 1} | {share:.3f} | {w:.2f} | {u:.2f} |"
        if null is not None:
            nr = null_rows.get(tick)
            row += f" {nr[5]:.3f} | {nr[2]:.2f} |" if nr else " – | – |"
        lines.append(row)
    lines += ["", *_mediation_lines(frames, days, null)]
    _draw_contagion(curve, null_curve, out / "prosim_contagion.png")
    return [*lines, "", "![contagion](prosim_contagion.png)", ""]


def policy_start(header: Any) -> int:
    """The first tick an inequity policy of the run acts on (0 when it names none)."""
    policies = header.get("config", {}).get("policies", {}) or {}
    starts = [
        int(section.get("from_tick", 1))
        for section in policies.values()
        if isinstance(section, dict)
        and section.get("kind") == "inequity"
        and section.get("enabled", True)
    ]
    return min(starts, default=0)


def unpaired(header: Any, null_header: Any) -> str | None:
    """Why the no-policy run is not this run's pair (None when it is): the same seed, days and
    world (graph, personas, scenario), and no inequity policy of its own."""
    config, other = header.get("config", {}), null_header.get("config", {})
    for what, mine, theirs in (
        ("seed", config.get("run", {}).get("seed"), other.get("run", {}).get("seed")),
        ("days", config.get("run", {}).get("ticks"), other.get("run", {}).get("ticks")),
        ("world", config.get("world"), other.get("world")),
    ):
        if mine != theirs:
            shown = f"{mine} here, {theirs} there" if what != "world" else "another config"
            return f"the no-policy run differs in its {what} ({shown})"
    if any(
        isinstance(section, dict)
        and section.get("kind") == "inequity"
        and section.get("enabled", True)
        for section in (other.get("policies") or {}).values()
    ):
        return "the no-policy run has an inequity policy"
    return None


def _mediation_lines(frames: Any, days: pl.DataFrame, null: Any | None) -> list[str]:
    lines: list[str] = []
    why = unpaired(frames.header, null.header) if null is not None else None
    if why is not None:
        lines += [f"Mediation across conditions: not estimable ({why}).", ""]
    elif null is not None:
        start = policy_start(frames.header)
        try:
            across = analysis.policy_mediation(
                days,
                null.of("prosim_day"),
                np.random.default_rng(MEDIATION_SEED),
                MEDIATION_RESAMPLES,
                start,
            )
        except ValueError as exc:
            lines += [f"Mediation across conditions: not estimable ({exc}).", ""]
        else:
            lines += _mediation_table(
                across,
                "Mediation, policy (this run) or none (the no-policy run of the same seed) → "
                f"unfairness → willingness, over the agent-days from day {start + 1} on",
                "policy",
                "agents, each with its days in both runs",
            )
            lines[-1:-1] = [
                "",
                "The interval resamples agents within this one pair of runs: it leaves out "
                "the variation between seeds (graphs, draws) and the dependence contagion puts "
                "between neighbours, so it is narrower than one over several seeds would be.",
            ]
    try:
        within = analysis.contagion_mediation(
            days, np.random.default_rng(MEDIATION_SEED), MEDIATION_RESAMPLES
        )
    except ValueError as exc:
        return [*lines, f"Mediation within the run: not estimable ({exc})."]
    return lines + _mediation_table(
        within,
        "Mediation within this run, hurt that day (treated or told of refusals) → "
        "unfairness → willingness, over its agent-days",
        "hurt",
        "agents",
    )


def _mediation_table(result: analysis.Mediation, title: str, x: str, clusters: str) -> list[str]:
    return [
        f"{title}: {result.rows} agent-days of {result.clusters} agents (least squares; "
        f"{result.resamples} bootstrap resamples of {clusters}, seed {MEDIATION_SEED}):",
        "",
        "| path | estimate |",
        "|---|---|",
        f"| a: {x} → unfairness | {result.a:+.3f} |",
        f"| b: unfairness → willingness, given {x} | {result.b:+.3f} |",
        f"| c′: direct, {x} → willingness | {result.direct:+.3f} |",
        f"| c: total | {result.total:+.3f} |",
        f"| a·b: indirect | {result.indirect:+.3f} [{result.low:+.3f}, {result.high:+.3f}] |",
        f"| share mediated (a·b / c) | {result.proportion_mediated:.2f} |",
        "",
    ]


def _draw_contagion(curve: pl.DataFrame, null: pl.DataFrame | None, path: Path) -> None:
    plt = _plt()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    day = curve["tick"].to_numpy() + 1
    left.plot(day, curve["affected_share"], marker="o", ms=3, label="inequity")
    if null is not None:
        left.plot(null["tick"].to_numpy() + 1, null["affected_share"], ls="--", label="no policy")
    left.set_ylim(0, 1)
    left.set_xlabel("day")
    left.set_ylabel("share affected")
    left.legend(fontsize=7)
    right.plot(day, curve["mean_willingness"], label="willingness")
    right.plot(day, curve["mean_unfairness"], label="unfairness")
    if null is not None:
        nday = null["tick"].to_numpy() + 1
        right.plot(nday, null["mean_willingness"], ls="--", label="willingness, no policy")
        right.plot(nday, null["mean_unfairness"], ls="--", label="unfairness, no policy")
    right.set_ylim(1, 7)
    right.set_xlabel("day")
    right.set_ylabel("mean rating (1–7)")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

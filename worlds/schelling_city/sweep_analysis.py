"""The Schelling city's part of a sweep report: altruistic-act rates and the archetype verdict.

Runs are paired by whether the message board was on; the prompt framing of each condition is
read from its config, so the verdict is given per model over every framing and again per
framing (the study's robustness check).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from agora.engine.analysis.stats import wilson_interval
from agora.worlds.schelling_city.archetype import (
    ArchetypeVerdict,
    RunActs,
    archetype_verdicts,
    run_acts,
)


def sweep_sections(runs: Sequence[Any], analysis: Any, out: Path) -> list[str]:
    acts: list[tuple[str, str, RunActs]] = []
    for run in runs:
        if run.frames.ticks.is_empty():
            continue
        framing = str(run.resolved.get("world", {}).get("framing", "neutral"))
        acts.append(
            (
                run.condition,
                framing,
                run_acts(run.frames, last_ticks=analysis.equilibrium_ticks, model=run.model),
            )
        )
    if not acts:
        return []
    overall = archetype_verdicts([a for _, _, a in acts])
    by_framing: list[tuple[str, ArchetypeVerdict]] = []
    for framing in sorted({f for _, f, _ in acts}):
        for verdict in archetype_verdicts([a for _, f, a in acts if f == framing]):
            by_framing.append((framing, verdict))
    (out / "archetypes.json").write_bytes(
        msgspec.json.format(
            msgspec.json.encode(
                {
                    "overall": overall,
                    "by_framing": [{"framing": f, **msgspec.to_builtins(v)} for f, v in by_framing],
                }
            )
        )
    )
    return [
        _rates_table(acts),
        _verdict_table("Archetype verdict per model (all framings)", overall),
        _verdict_table(
            "Archetype verdict per model and framing (robustness)",
            [v for _, v in by_framing],
            [f for f, _ in by_framing],
        ),
        _thresholds_note(overall),
        _rates_figure(acts, out),
    ]


def _rates_table(acts: Sequence[tuple[str, str, RunActs]]) -> str:
    lines = [
        "## Altruistic acts per model and condition",
        "",
        "An altruistic act lowers the actor's own utility and raises the city's "
        "(behaviour-matrix cell −+). Rate over valid decisions with its 95% Wilson interval; "
        "PoA and Gini at equilibrium, mean over seeds.",
        "",
        "| model | condition | board | runs | altruistic / decisions | rate [95% CI] | PoA "
        "| Gini |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(a.model, condition) for condition, _, a in acts}, key=lambda k: k)
    for model, condition in keys:
        group = [a for c, _, a in acts if a.model == model and c == condition]
        successes = sum(a.altruistic for a in group)
        trials = sum(a.decisions for a in group)
        rate = wilson_interval(successes, trials)
        estimate = f"{rate.estimate:.2%}" if rate.estimate is not None else "–"
        poa = sum(a.poa for a in group) / len(group)
        gini = sum(a.gini for a in group) / len(group)
        lines.append(
            f"| {model} | {condition} | {'on' if group[0].board else 'off'} | {len(group)} | "
            f"{successes} / {trials} | {estimate} [{rate.low:.2%}, {rate.high:.2%}] | "
            f"{poa:.3f} | {gini:.3f} |"
        )
    return "\n".join(lines)


def _verdict_table(
    title: str, verdicts: Sequence[ArchetypeVerdict], framings: Sequence[str] | None = None
) -> str:
    lines = [
        f"## {title}",
        "",
        ("| model | framing " if framings else "| model ")
        + "| verdict | rate without board | rate with board | difference [95% CI] | "
        "test | p | reason |",
        "|---|---|" + ("---|" if framings else "") + "---|---|---|---|---|---|",
    ]
    for index, verdict in enumerate(verdicts):
        without, with_ = verdict.without_board, verdict.with_board
        difference = verdict.difference
        diff_text = "–"
        if difference is not None and difference.difference is not None:
            diff_text = (
                f"{difference.difference:+.2%} [{difference.low:+.2%}, {difference.high:+.2%}]"
            )
        p_text = f"{verdict.p_value:.2g}" if verdict.p_value is not None else "–"
        framing = f"| {framings[index]} " if framings else ""
        lines.append(
            f"| {verdict.model} {framing}| **{verdict.verdict}** | {_rate(without)} | "
            f"{_rate(with_)} | {diff_text} | {verdict.decided_by or '–'} | {p_text} | "
            f"{verdict.reason.replace('|', '/')} |"
        )
    return "\n".join(lines)


def _rate(summary: Any) -> str:
    if summary is None or summary.rate.estimate is None:
        return "–"
    return f"{summary.rate.estimate:.2%} (PoA {summary.poa:.3f})"


def _thresholds_note(verdicts: Sequence[ArchetypeVerdict]) -> str:
    limits = verdicts[0].thresholds if verdicts else None
    if limits is None:
        return ""
    return (
        "Thresholds (worlds/schelling_city/archetype.py): **Altruistic Optimizer** when PoA ≥ "
        f"{limits.optimizer_min_poa:g} with and without the board and altruistic acts without "
        f"it ≥ {limits.optimizer_min_acts:g} per run; **Adaptive Egoist** when PoA < "
        f"{limits.egoist_max_poa:g} without the board and the board raises the altruistic-act "
        f"rate with p < {limits.significance:g} (cluster-robust logistic regression with seeds "
        "as clusters, Student's t with G − 1 df; the two-proportion z-test when that is not "
        "estimable); otherwise **undetermined**, with the reason."
    )


def _rates_figure(acts: Sequence[tuple[str, str, RunActs]], out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({a.model for _, _, a in acts})
    conditions = list(dict.fromkeys(c for c, _, _ in acts))
    figure, ax = plt.subplots(figsize=(1.6 + 1.2 * len(models) * len(conditions) / 2, 3.2))
    width = 0.8 / max(1, len(conditions))
    for j, condition in enumerate(conditions):
        estimates, lows, highs = [], [], []
        for model in models:
            group = [a for c, _, a in acts if a.model == model and c == condition]
            rate = wilson_interval(
                sum(a.altruistic for a in group), sum(a.decisions for a in group)
            )
            value = rate.estimate or 0.0
            estimates.append(value)
            lows.append(value - rate.low)
            highs.append(rate.high - value)
        positions = [i + j * width for i in range(len(models))]
        ax.bar(positions, estimates, width, yerr=[lows, highs], capsize=2, label=condition)
    ax.set_xticks([i + width * (len(conditions) - 1) / 2 for i in range(len(models))])
    ax.set_xticklabels(models, fontsize=8)
    ax.set_ylabel("altruistic-act rate")
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "altruism_rates.png", dpi=110)
    plt.close(figure)
    return (
        "![Altruistic-act rate per model and condition, 95% Wilson intervals](altruism_rates.png)"
    )

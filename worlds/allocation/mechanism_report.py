"""The mechanism study's report (``OUT/report.md`` and its figures), from the study's runs
and ``study.json`` alone, so it can be rewritten without running anything again."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from agora.engine.frames import load_run
from agora.worlds.allocation import analysis


def _f(value: float, digits: int = 1) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def _amounts(run: Path) -> tuple[list[float], int, int]:
    """The run's answers, how many decisions were asked, and its maximum."""
    frames = load_run(run)
    allocations = frames.of("allocation")
    asked = frames.of("decision").height
    maximum = int(frames.header.get("world_info", {}).get("maximum", 100))
    values = allocations["amount"].cast(pl.Float64).to_list() if not allocations.is_empty() else []
    return values, asked, maximum


def write_report(out: Path) -> Path:
    facts: dict[str, Any] = msgspec.json.decode((out / "study.json").read_bytes())
    runs = out / "runs"
    answer = facts.get("answer", "score")
    how = (
        "each drawn from the model's probabilities of every allowed amount (the local backend "
        "scores every allowed value, so no answer can be invalid; the valid rate below shows "
        "it)"
        if answer == "score"
        else "each written by the model as free text and parsed like any server's answer "
        "(`--answer generate`: an answer that is not a whole number in range is invalid, and "
        "the valid rate below counts them)"
    )
    given = facts.get("direction", {})
    norms = ", ".join(f"layer {k} {_f(v, 2)}" for k, v in facts["direction_norms"].items())
    computed = not given.get("given", False)
    if computed:
        what = (
            f"Direction: per layer, the mean over {facts['pairs']} minimal pairs (the Dictator "
            "Game at endowments 20 … 200, prompts differing only in the stance sentence) of "
            "the generous minus the selfish residual stream at the last prompt token"
        )
    else:
        what = f"Direction: `{given.get('file')}` ({given.get('method')}"
        if given.get("source"):
            what += f" of `{given['source']}`"
        if given.get("feature") is not None:
            what += f", feature {given['feature']}"
        what += "), given to the study, not computed by it"
        if given.get("model_sha256") == "":
            what += " (the file does not say which weights it was made for)"
    lines = [
        "# The altruism mechanism: minimal pairs and steering",
        "",
        f"Model `{facts['model_name']}` ({facts['model']}, SHA-256 {facts['sha256'][:16]}…), "
        f"{facts['model_layers']} layers, hidden size {facts['hidden_size']}; "
        f"{facts['samples']} answers per cell at temperature {facts['temperature']:g}, {how}.",
        "",
        f"**`{facts['model_name']}` is not the paper's model** (which the paper's abstract "
        "does not name): what it does says nothing about other models; the same command runs "
        "on any one unchanged (`--model-path`). The layers, strengths and prompts were fixed "
        "before anything ran; nothing here is tuned to the result.",
        "",
        f"{what}; strength s adds s × that vector after the layer's block, at every position. "
        f"Its norm: {norms}.",
        "",
    ]
    # Stances, unsteered.
    stances = load_run(runs / "stances")
    allocations = stances.of("allocation")
    per = facts["samples"]
    summaries = analysis.by_stance(allocations, ["generous", "selfish", "neutral"], per)
    lines += [
        "## The minimal pairs, unsteered",
        "",
        "| stance | valid answers | mean [95% CI] | median |",
        "|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.stance} | {s.n} of {s.asked} | {_f(s.mean)} [{_f(s.low)}, {_f(s.high)}] | "
            f"{_f(s.median)} |"
        )
    amounts = {
        s: allocations.filter(pl.col("stance") == s)["amount"].cast(pl.Float64).to_list()
        if not allocations.is_empty()  # no valid answer at all: no columns either
        else []
        for s in ("generous", "selfish")
    }
    shift = analysis.shift(amounts["generous"], amounts["selfish"])
    lines += [
        "",
        f"Shift, generous − selfish: {_f(shift.difference)} [{_f(shift.low)}, {_f(shift.high)}].",
        "",
    ]
    # The sweep.
    baseline = _amounts(runs / "dictator" / "strength0")
    curves: dict[int, list[tuple[float, list[float], int]]] = {}
    for layer in facts["layers"]:
        cells = [(0.0, baseline[0], baseline[1])]
        for strength in facts["strengths"]:  # the study's, not whatever else is there
            if strength:
                run = runs / "dictator" / f"L{layer}" / f"strength{strength:+g}"
                values, asked, _ = _amounts(run)
                cells.append((float(strength), values, asked))
        curves[layer] = sorted(cells, key=lambda c: c[0])
    lines += [
        "## Steering the neutral prompt: allocation against strength",
        "",
        "Mean allocation [95% t interval] and the valid-answer rate per strength; Spearman's "
        "correlation of the allocations with the strength over all answers of the layer.",
        "",
    ]
    strengths = [c[0] for c in curves[facts["layers"][0]]]
    lines += [
        "| layer | " + " | ".join(f"s = {s:+g}" for s in strengths) + " | Spearman ρ (p) |",
        "|---|" + "---|" * (len(strengths) + 1),
    ]
    for layer, cells in curves.items():
        row = []
        for _, values, asked in cells:
            summary = analysis.summarise("", values, asked)
            row.append(
                f"{_f(summary.mean)} [{_f(summary.low)}, {_f(summary.high)}] "
                f"({_f(summary.valid_rate, 2)})"
            )
        xs = [s for s, values, _ in cells for _ in values]
        ys = [v for _, values, _ in cells for v in values]
        rho, p = analysis.spearman(xs, ys)
        lines.append(f"| {layer} | " + " | ".join(row) + f" | {_f(rho, 3)} ({_f(p, 4)}) |")
    lines += [
        "",
        "![allocation against strength](curves.png)",
        "",
        "![distributions](distributions.png)",
        "",
    ]
    _draw_curves(curves, out / "curves.png", "the mean difference" if computed else "the vector")
    _draw_distributions(curves, out / "distributions.png")
    # Transfer.
    lines += [
        f"## The same vector in the sibling games (layer {facts['transfer_layer']})",
        "",
        "Mean share of the game's maximum [95% CI] (valid-answer rate) by strength; "
        "Spearman ρ (p) of the shares with the strength. Third-party punishment's share is "
        "of the observer's points spent on punishing the dictator.",
        "",
        f"| game | s = {-facts['transfer_strength']:+g} | s = 0 | "
        f"s = {facts['transfer_strength']:+g} | Spearman ρ (p) |",
        "|---|---|---|---|---|",
    ]
    reach = float(facts["transfer_strength"])
    for game in facts["transfer_games"]:
        cells = []
        for strength in (-reach, 0.0, reach):
            run = runs / "transfer" / game / f"strength{strength:+g}"
            values, asked, maximum = _amounts(run)
            cells.append((strength, [v / maximum for v in values], asked))
        row = []
        for _, shares, asked in cells:
            summary = analysis.summarise("", shares, asked)
            row.append(
                f"{_f(summary.mean, 3)} [{_f(summary.low, 3)}, {_f(summary.high, 3)}] "
                f"({_f(summary.valid_rate, 2)})"
            )
        rho, p = analysis.spearman(
            [s for s, shares, _ in cells for _ in shares],
            [v for _, shares, _ in cells for v in shares],
        )
        lines.append(f"| {game} | " + " | ".join(row) + f" | {_f(rho, 3)} ({_f(p, 4)}) |")
    # Patching.
    patching = facts["patching"]
    lines += [
        "",
        "## Activation patching, generous → selfish (the Dictator Game, 100 points)",
        "",
        f"The selfish prompt's expected allocation Σ v·P(v) with the generous prompt's residual "
        f"stream copied in after the layer at the {patching[0]['positions'] if patching else '?'} "
        "positions the two prompts share at their end (the question and after); restored = "
        "(patched − selfish) / (generous − selfish). These come from the scores of every "
        "allowed amount, whatever the answer mode of the runs above.",
        "",
        "| layer | selfish | patched | generous | restored |",
        "|---|---|---|---|---|",
    ]
    for row in patching:
        lines.append(
            f"| {row['layer']} | {_f(row['selfish'], 2)} | {_f(row['patched'], 2)} | "
            f"{_f(row['generous'], 2)} | {_f(row['restored'], 2)} |"
        )
    lines += [
        "",
        f"Model load {facts['load_s']} s; the whole study {facts['wall_s']} s. Runs: `runs/` "
        "(each replayable: `agora replay`), direction: "
        + ("`direction.npz`." if computed else f"`{given.get('file')}`."),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _draw_curves(
    curves: dict[int, list[tuple[float, list[float], int]]], path: Path, unit: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.5, 3.6), dpi=100)
    for layer, cells in curves.items():
        xs, means, errors = [], [], []
        for strength, values, asked in cells:
            summary = analysis.summarise("", values, asked)
            xs.append(strength)
            means.append(summary.mean)
            errors.append(0.0 if math.isnan(summary.high) else summary.high - summary.mean)
        ax.errorbar(xs, means, yerr=errors, marker="o", ms=3, capsize=2, label=f"layer {layer}")
    ax.set_xlabel(f"steering strength (× {unit})")
    ax.set_ylabel("mean allocation (0–100)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _draw_distributions(
    curves: dict[int, list[tuple[float, list[float], int]]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(curves), figsize=(4 * len(curves), 3.4), dpi=100, squeeze=False
    )
    for ax, (layer, cells) in zip(axes[0], curves.items(), strict=True):
        data = [values if values else [np.nan] for _, values, _ in cells]
        ax.boxplot(data, tick_labels=[f"{s:+g}" for s, _, _ in cells])
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("strength")
        ax.set_ylim(-2, 102)
    axes[0][0].set_ylabel("allocation")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

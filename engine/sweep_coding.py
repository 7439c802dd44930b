"""The grounded-theory section of a sweep report: reasonings coded by model × condition.

Open coding by the world's codebook rules (always) and by an LLM judge (when the sweep's
``analysis.judge`` names a backend), axial coding into the codebook's categories, selective
coding of a core category per group, and Cohen's kappa between the two coders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from agora.engine.analysis.codebook import load_codebook
from agora.engine.analysis.coding import CodingReport, code_reasonings
from agora.engine.analysis.judge import JudgeCoder
from agora.engine.config import InferenceSection, check
from agora.engine.sweep import AnalysisSection

GROUPS = ("model", "condition")


def reasonings_frame(runs: Sequence[Any]) -> pl.DataFrame:
    """Every valid decision's reasoning with its model, condition and a stable id."""
    frames = []
    for run in runs:
        decisions = run.frames.decisions
        if decisions.is_empty():
            continue
        frames.append(
            decisions.filter(pl.col("valid")).select(
                pl.lit(run.model).alias("model"),
                pl.lit(run.condition).alias("condition"),
                (
                    pl.lit(f"{run.model}/{run.condition}/{run.seed}:")
                    + pl.col("tick").cast(pl.Utf8)
                    + pl.lit(":")
                    + pl.col("agent").cast(pl.Utf8)
                ).alias("id"),
                pl.col("reasoning"),
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={"model": pl.Utf8, "condition": pl.Utf8, "id": pl.Utf8, "reasoning": pl.Utf8}
        )
    combined: pl.DataFrame = pl.concat(frames)
    return combined


def run_coding(runs: Sequence[Any], analysis: AnalysisSection, codebook_path: Path) -> CodingReport:
    codebook = load_codebook(codebook_path)
    frame = reasonings_frame(runs)

    async def go() -> CodingReport:
        judge = None
        if analysis.judge is not None:
            settings = check(analysis.judge, InferenceSection, "sweep.analysis.judge")
            judge = JudgeCoder.from_settings(settings, codebook)
        try:
            return await code_reasonings(
                frame,
                codebook,
                group_by=GROUPS,
                judge=judge,
                sample=analysis.coding_sample,
                examples=analysis.quotes,
            )
        finally:
            if judge is not None:
                await judge.aclose()

    return asyncio.run(go())


def coding_section(
    runs: Sequence[Any], analysis: AnalysisSection, codebook_path: Path, out: Path
) -> list[str]:
    report = run_coding(runs, analysis, codebook_path)
    (out / "coding.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    lines = [
        "## Reasoning codes (grounded theory)",
        "",
        f"Codebook `{report.codebook}` (version {report.codebook_version}); "
        f"{report.sampled} reasonings coded of {report.rows} "
        f"(a seeded sample of at most {report.sample} per model × condition; "
        f"{report.blank} blank left out). Open coding assigns codes to each reasoning, axial "
        "coding groups them into the codebook's categories, selective coding names the core "
        "category of each group (the largest share, runner-up beside it). Full results: "
        "`coding.json`.",
        "",
    ]
    for result in report.coders:
        lines += [
            f"### Coder: {result.label} ({result.backend} / {result.model})",
            "",
            f"{result.texts} distinct texts, {result.requests} requests "
            f"({result.cached} cached), {result.invalid} invalid, {result.errors} errors.",
            "",
            "| model | condition | coded | core category | runner-up | categories (share) |",
            "|---|---|---|---|---|---|",
        ]
        for group in result.groups:
            core = group.core
            categories = ", ".join(
                f"{c.category} {c.share:.0%}" for c in group.categories if c.share
            )
            lines.append(
                f"| {group.group.get('model')} | {group.group.get('condition')} | {group.coded} | "
                f"{core.category or '–'} ({_share(core.share)}) | "
                f"{core.runner_up or '–'} ({_share(core.runner_up_share)}) | {categories} |"
            )
        lines += ["", "Code frequencies (share of coded reasonings) with example quotes:", ""]
        codes = sorted({c.code for g in result.groups for c in g.codes})
        header = "| code | " + " | ".join(
            f"{g.group.get('model')} / {g.group.get('condition')}" for g in result.groups
        )
        lines += [header + " |", "|---|" + "---|" * len(result.groups)]
        for code in codes:
            cells = []
            for group in result.groups:
                found = next((c for c in group.codes if c.code == code), None)
                cells.append(_share(found.share) if found else "–")
            lines.append(f"| {code} | " + " | ".join(cells) + " |")
        lines.append("")
        for group in result.groups:
            quoted = [c for c in group.codes if c.examples and c.count]
            if not quoted:
                continue
            lines.append(f"- **{group.group.get('model')} / {group.group.get('condition')}**: ")
            for frequency in sorted(quoted, key=lambda c: -c.count)[:3]:
                quote = frequency.examples[0].text.replace("|", "/")
                lines.append(f"  - `{frequency.code}` ({frequency.count}): “{quote}”")
        lines.append("")
    if report.agreement is not None:
        agreement = report.agreement
        lines += [
            f"### Agreement: {agreement.first} vs {agreement.second}",
            "",
            f"{agreement.items} reasonings coded by both; mean Cohen's kappa over codes "
            f"{_kappa(agreement.mean_kappa)} ({agreement.codes_in_mean} codes with a defined "
            "kappa).",
        ]
        if agreement.note:
            lines += ["", agreement.note]
        lines += ["", "| code | rules | judge | kappa |", "|---|---|---|---|"]
        for label in agreement.codes:
            lines.append(
                f"| {label.name} | {label.first_count} | {label.second_count} | "
                f"{_kappa(label.kappa.kappa)} |"
            )
        lines.append("")
    else:
        lines += [
            "No LLM judge configured (`[sweep.analysis] judge = {...}`): only the codebook "
            "rules coded, so no agreement is reported.",
            "",
        ]
    return lines


def _share(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "–"


def _kappa(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "–"

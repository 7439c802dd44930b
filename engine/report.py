"""``agora report RUN_DIR``: a run summarised as markdown with figures, from its log alone.

What is drawn follows the shape of each tick metric, so any world gets a report: scalar metrics
as series over ticks, square integer tables (the behaviour matrix) as a heatmap summed over the
run; plus decisions per tick, invalid answers and their reasons, tokens and cost, the records
of each kind the world and the policies declare, the world's own sections when it has any
(``world_reports.RunSections``), and the final state drawn by the world when it can draw
itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from agora.engine.frames import load_run
from agora.engine.plugins import load_plugin
from agora.engine.replay import Replayer, read_run
from agora.engine.world_reports import Draws, RunSections, table_axes, tick_name


def write_report(run_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = load_run(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    header = frames.header
    ticks = frames.ticks.sort("tick") if frames.ticks.height else frames.ticks
    decisions = frames.decisions
    world_plugin = load_plugin("world", str(header["world"]), "world.kind")
    lines = [
        f"# Run {header['run_id']}",
        "",
        f"World `{header['world']}`, backend `{header['backend']}`, model `{header['model']}`, "
        f"seed {header['seed']}, scheduler {header['scheduler']}; started {header['started_at']}.",
        "",
    ]
    if header["backend"] == "offline":
        model = str(header["world_info"].get("offline", {}).get("model", "rule agents"))
        # The world's own words may already say it is no LLM: say it once.
        tail = "" if "not an LLM" in model else ", not an LLM"
        lines += [f"Answers came from the offline behavioural model ({model}){tail}.", ""]

    metric_rows: list[dict[str, Any]] = (
        ticks.get_column("metrics").to_list() if ticks.height else []
    )
    scalar_names = [
        k for k, v in (metric_rows[0] if metric_rows else {}).items() if isinstance(v, int | float)
    ]
    if scalar_names:
        figure, axes = plt.subplots(
            len(scalar_names), 1, figsize=(7, 1.7 * len(scalar_names)), sharex=True
        )
        axes = axes if len(scalar_names) > 1 else [axes]
        tick_numbers = ticks.get_column("tick").to_list()
        for ax, name in zip(axes, scalar_names, strict=True):
            ax.plot(tick_numbers, [row[name] for row in metric_rows], marker=".", linewidth=1)
            ax.set_ylabel(name, rotation=0, ha="right", fontsize=9)
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel("tick")
        figure.tight_layout()
        figure.savefig(out / "metrics.png", dpi=100)
        plt.close(figure)
        lines += ["## Metrics over ticks", "", "![metrics](metrics.png)", ""]
        lines += ["| metric | first tick | last tick |", "|---|---|---|"]
        for name in scalar_names:
            lines.append(f"| {name} | {metric_rows[0][name]:g} | {metric_rows[-1][name]:g} |")
        lines.append("")

    for name, value in (metric_rows[0] if metric_rows else {}).items():
        if _is_square_table(value):
            summed = [
                [
                    sum(tick_metrics[name][i][j] for tick_metrics in metric_rows)
                    for j in range(len(value))
                ]
                for i in range(len(value))
            ]
            figure, ax = plt.subplots(figsize=(4, 3.6))
            image = ax.imshow(summed, cmap="Blues")
            signs = ["−", "0", "+"] if len(value) == 3 else [str(i) for i in range(len(value))]
            ax.set_xticks(range(len(value)), signs)
            ax.set_yticks(range(len(value)), signs)
            x_label, y_label = table_axes(world_plugin, name)
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            for i, cells in enumerate(summed):
                for j, count in enumerate(cells):
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=10)
            figure.colorbar(image, ax=ax)
            figure.tight_layout()
            figure.savefig(out / f"{name}.png", dpi=100)
            plt.close(figure)
            lines += [f"## {name} (summed over the run)", "", f"![{name}]({name}.png)", ""]

    if ticks.height:
        figure, ax = plt.subplots(figsize=(7, 2.4))
        tick_numbers = ticks.get_column("tick").to_list()
        valid = ticks.get_column("valid").to_list()
        invalid = ticks.get_column("invalid").to_list()
        errors = ticks.get_column("errors").to_list()
        ax.bar(tick_numbers, valid, label="valid", color="#4c9a2a")
        ax.bar(tick_numbers, invalid, bottom=valid, label="invalid", color="#e0a100")
        ax.bar(
            tick_numbers,
            errors,
            bottom=[v + i for v, i in zip(valid, invalid, strict=True)],
            label="errors",
            color="#c0392b",
        )
        ax.set_xlabel("tick")
        ax.set_ylabel("decisions")
        ax.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / "decisions.png", dpi=100)
        plt.close(figure)

    total = decisions.height
    invalid_total = (
        decisions.filter(~pl.col("valid") & pl.col("error").is_null()).height if total else 0
    )
    errors_total = decisions.filter(pl.col("error").is_not_null()).height if total else 0
    lines += [
        "## Decisions",
        "",
        "![decisions](decisions.png)" if ticks.height else "",
        "",
        "| decisions | invalid | errors | requests | tokens in | tokens out | cost (USD) |",
        "|---|---|---|---|---|---|---|",
        f"| {total} | {invalid_total} ({100 * invalid_total / max(total, 1):.1f}%) "
        f"| {errors_total} | {_sum(decisions, 'requests')} | {_sum(decisions, 'tokens_in')} "
        f"| {_sum(decisions, 'tokens_out')} | {_sum(decisions, 'cost_usd', float):.4f} |",
        "",
    ]
    if invalid_total:
        reasons = (
            decisions.filter(pl.col("invalid_reason").is_not_null())
            .group_by("invalid_reason")
            .len()
            .sort("len", descending=True)
            .head(5)
        )
        lines += ["Most common reasons an answer was invalid:", ""]
        lines += [f"- {row['invalid_reason']} ({row['len']})" for row in reasons.to_dicts()]
        lines.append("")

    lines += _records_section(frames.records, header.get("records", {}))
    if isinstance(world_plugin, RunSections):
        for block in world_plugin.run_sections(frames, run_dir, out):
            lines += [block, ""]
    picture = _final_picture(run_dir, out)
    if picture:
        lines += ["## Final state", "", f"![final state]({picture})", ""]
    if total:
        samples = decisions.filter(pl.col("valid")).tail(3)
        lines += ["## Reasoning, last decisions", ""]
        for row in samples.to_dicts():
            lines.append(f"- tick {row['tick']}, agent {row['agent']}: {row['reasoning']}")
        lines.append("")
    end = frames.end
    if end is None:
        lines.append("Run status: unfinished (no end record; `agora resume` continues it).")
    else:
        why = f" ({end['reason']})" if end.get("reason") else ""
        lines.append(f"Run status: {end['status']}{why}.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _records_section(records: dict[str, pl.DataFrame], declarers: dict[str, str]) -> list[str]:
    """How many records of each declared kind the run logged, and in how many ticks."""
    if not records:
        return []
    lines = ["## Records", "", "| kind | declared by | records | ticks |", "|---|---|---|---|"]
    for kind in sorted(records):
        frame = records[kind]
        ticks = frame.get_column("tick").n_unique() if frame.height else 0
        lines.append(f"| {kind} | {declarers.get(kind, '')} | {frame.height} | {ticks} |")
    return [*lines, ""]


def _is_square_table(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 1
        and all(isinstance(row, list) and len(row) == len(value) for row in value)
        and all(isinstance(x, int) for row in value for x in row)
    )


def _sum(frame: pl.DataFrame, column: str, kind: type = int) -> Any:
    if frame.height == 0 or column not in frame.columns:
        return kind(0)
    return kind(frame.get_column(column).sum())


def _final_picture(run_dir: Path, out: Path) -> str | None:
    import matplotlib.pyplot as plt

    logged = read_run(run_dir)
    replayer = Replayer(logged)
    plugin = replayer.world_plugin
    if not isinstance(plugin, Draws) or logged.last_tick < 0:
        return None
    replayer.advance_to(logged.last_tick)
    figure, ax = plt.subplots(figsize=(4.5, 4.8))
    plugin.draw(replayer.world, ax)
    ax.set_title(f"end of {tick_name(plugin, logged.last_tick)}")
    figure.savefig(out / "final_state.png", bbox_inches="tight", dpi=100)
    plt.close(figure)
    return "final_state.png"

"""``agora prosim-report --scenarios RUN --punishment RUN --network RUN [--null RUN] --out DIR``:
ProSim's three studies in one report (``report.py``), with the graph drawn day by day (a PNG
per day and a GIF, from the network run's replay). Any study may be left out; a run that is
not the study's world is refused in one line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agora.engine.config import ConfigError
from agora.engine.frames import load_run
from agora.engine.log import LogFormatError
from agora.engine.pictures import write_frames
from agora.engine.replay import Replayer, ReplayError, read_run

STUDIES: dict[str, tuple[str, ...]] = {
    "scenarios": ("prosim_scenarios",),
    # ProSim's people playing FairMindSim's game, or FairMindSim's own.
    "punishment": ("prosim_punishment", "fairmind"),
    "network": ("prosim_network",),
    "null": ("prosim_network",),
}


def _frames(path: Path | None, option: str) -> Any:
    if path is None:
        return None
    try:
        frames = load_run(path)
    except (LogFormatError, OSError) as exc:
        raise ConfigError(f"--{option} {path}: not a readable run ({exc})") from None
    world = str(frames.header.get("world", "?"))
    if world not in STUDIES[option]:
        needed = " or ".join(repr(w) for w in STUDIES[option])
        raise ConfigError(f"--{option} {path}: a {world!r} run; this study needs a {needed} run")
    return frames


class ProSimReportCommand:
    name = "prosim-report"
    help = "ProSim's three studies in one report (scenarios, punishment, network)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--scenarios", type=Path, help="a prosim_scenarios run (Study 1)")
        parser.add_argument("--punishment", type=Path, help="a prosim_punishment run (Study 2)")
        parser.add_argument("--network", type=Path, help="a prosim_network run (Study 3)")
        parser.add_argument(
            "--null", type=Path, help="a prosim_network run without the policy, for contrast"
        )
        parser.add_argument("--out", type=Path, required=True, help="the report's directory")
        parser.add_argument(
            "--no-frames", action="store_true", help="skip the graph's day-by-day pictures"
        )

    def run(self, args: argparse.Namespace) -> int:
        from agora.worlds.prosim.report import (
            network_sections,
            punishment_sections,
            scenario_sections,
        )

        runs = {name: _frames(getattr(args, name), name) for name in STUDIES}
        if all(runs[name] is None for name in ("scenarios", "punishment", "network")):
            raise ConfigError("give at least one of --scenarios, --punishment, --network")
        if runs["null"] is not None and runs["network"] is None:
            raise ConfigError("--null is a contrast to --network; give --network too")
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        lines = ["# ProSim: prosocial behaviour under institutional policies", ""]
        for name in STUDIES:
            if name != "null" and runs[name] is not None:
                lines.append(f"- Study `{name}`: `{getattr(args, name)}`")
        if runs["null"] is not None:
            lines.append(f"- No-policy contrast: `{args.null}`")
        lines.append("")
        if runs["scenarios"] is not None:
            lines += scenario_sections(runs["scenarios"], out)
        if runs["punishment"] is not None:
            lines += punishment_sections(runs["punishment"], out)
        if runs["network"] is not None:
            lines += network_sections(runs["network"], out, runs["null"])
            if not args.no_frames:
                lines += _graph_frames(args.network, out)
        report = out / "report.md"
        report.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"agora prosim-report: written to {report}")
        return 0


def _graph_frames(run: Path, out: Path) -> list[str]:
    try:
        logged = read_run(run)
        replayer = Replayer(logged)
        frames = write_frames(replayer, out / "graph", last_tick=logged.last_tick)
    except ReplayError as exc:
        raise ConfigError(f"--network {run}: cannot be replayed to draw it ({exc})") from None
    last = frames[-1].name if frames else ""
    return [
        "The graph on the last day (seed agents ringed in black; red edges: refusals told "
        "that day); every day in `graph/` and as `graph/run.gif`:",
        "",
        f"![graph](graph/{last})",
        "",
    ]


COMMAND = ProSimReportCommand()

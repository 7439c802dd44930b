"""``agora fit INPUT --out DIR``: FairMindSim's choice models fitted per agent to a trials CSV,
a run or a sweep (``datasets.py``), with cross-validation, a permutation test and, with
``--recover``, parameter and model recovery (``fit_report.py``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl

from agora.engine.config import ConfigError
from agora.engine.log import LogFormatError
from agora.worlds.fairmind.models import MODELS, TrialsError, model_named


def _models(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one model")
    try:
        # Each model once, in the order named (brem,BREM is one model).
        return tuple(dict.fromkeys(model_named(name).name for name in names))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers, e.g. 60,180,300") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive round counts")
    return values


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


class FitCommand:
    name = "fit"
    help = "fit FairMindSim's choice models (BREM and baselines) to a trials CSV, run or sweep"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "input",
            type=Path,
            help="a trials CSV (agent,round,p1_share,p2_share,cost,choice[,dataset]), "
            "a FairMindSim run directory or a sweep directory",
        )
        parser.add_argument("--out", type=Path, required=True, help="where the files go")
        parser.add_argument(
            "--models",
            type=_models,
            default=tuple(model.name for model in MODELS),
            help="comma-separated (default: all six: "
            + ",".join(model.name for model in MODELS)
            + ")",
        )
        parser.add_argument("--seed", type=_count(0), default=0, help="seeds every stage")
        parser.add_argument("--restarts", type=_count(1), default=4)
        parser.add_argument("--candidates", type=_count(1), default=32)
        parser.add_argument(
            "--folds", type=_count(0), default=5, help="cross-validation folds (0: none)"
        )
        parser.add_argument(
            "--permutations",
            type=_count(0),
            default=200,
            help="permutation-test shuffles of BREM (0: none)",
        )
        parser.add_argument(
            "--recover", action="store_true", help="add parameter and model recovery"
        )
        parser.add_argument("--recover-agents", type=_count(2), default=100)
        parser.add_argument("--recover-rounds", type=_lengths, default=(60, 180, 300))

    def run(self, args: argparse.Namespace) -> int:
        from agora.worlds.fairmind.datasets import load_datasets
        from agora.worlds.fairmind.fit_report import FitOptions, analyse, write_results

        if args.folds == 1:
            raise ConfigError("--folds: cross-validation needs at least 2 folds (0: none)")
        options = FitOptions(
            models=args.models,
            seed=args.seed,
            restarts=args.restarts,
            candidates=args.candidates,
            folds=args.folds,
            permutations=args.permutations if "BREM" in args.models else 0,
            recover=args.recover,
            recover_agents=args.recover_agents,
            recover_rounds=args.recover_rounds,
        )
        if args.out.exists() and not args.out.is_dir():
            # Said before the fits, not after minutes of them.
            raise ConfigError(f"--out {args.out}: cannot write there (a file, not a directory)")
        try:
            datasets, left_out = load_datasets(args.input, options.min_rounds)
            if not any(d.agents for d in datasets):
                raise ConfigError(
                    f"{args.input}: no agent has the {options.min_rounds} rounds a fit needs"
                )
            for d in datasets:
                if not d.agents:
                    left_out.append(
                        f"{d.name}: no agent has the {options.min_rounds} rounds a fit needs "
                        f"({len(d.too_few)} agents)"
                    )
            datasets = [d for d in datasets if d.agents]

            def progress(line: str) -> None:
                print(f"agora fit: {line}", file=sys.stderr, flush=True)

            results = analyse(
                datasets, options, source=str(args.input), left_out=left_out, progress=progress
            )
        except TrialsError as exc:
            raise ConfigError(f"{args.input}: {exc}") from None
        except (LogFormatError, pl.exceptions.PolarsError) as exc:
            raise ConfigError(f"{args.input}: not a readable run or trials file ({exc})") from None
        try:
            paths = write_results(results, args.out)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot write there ({exc})") from None
        for dataset in results.datasets:
            best = min(dataset.summary, key=lambda s: s.mean_aic)
            print(
                f"{dataset.name}: {dataset.agents} agents, {dataset.trials} trials; lowest mean "
                f"AIC {best.model} ({best.mean_aic:.2f}, accuracy {best.mean_accuracy:.3f})"
            )
            if dataset.missed or dataset.too_few:
                print(
                    f"  {len(dataset.missed)} agents missed rounds, "
                    f"{len(dataset.too_few)} not fitted (too few rounds): see the summary"
                )
        for path in paths:
            print(f"  wrote {path}")
        return 0


COMMAND = FitCommand()

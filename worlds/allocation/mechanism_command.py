"""``agora mechanism --model-path PATH --out DIR``: the altruism-mechanism study on a local
white-box model (``mechanism.py``); needs ``agora[local]``. Rerun into the same ``--out``:
finished runs are kept, the report rewritten."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agora.engine.config import ConfigError


def _numbers(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give numbers separated by commas"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one")
        return values

    return parse


class MechanismCommand:
    name = "mechanism"
    help = "minimal-pair direction, steering sweep, transfer and patching on a local model"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model-path", type=Path, required=True, help="HF folder or .gguf")
        parser.add_argument("--model-name", default="local-model", help="its name in the logs")
        parser.add_argument("--out", type=Path, required=True, help="the study's directory")
        parser.add_argument(
            "--config", type=Path, default=Path("runs/dictator.toml"), help="the allocation run"
        )
        parser.add_argument("--layers", type=_numbers(int), default=(), help="e.g. 7,15,22")
        parser.add_argument(
            "--strengths",
            type=_numbers(float),
            default=(-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0),
            help="× the direction (default -8 … 8); write --strengths=-4,0,4",
        )
        parser.add_argument("--samples", type=int, default=20, help="answers per cell")
        parser.add_argument("--transfer-strength", type=float, default=4.0)
        parser.add_argument(
            "--direction",
            type=Path,
            help="steer along this direction file (e.g. from agora direction sae) instead of "
            "the minimal pairs' mean difference; default layers: the file's",
        )
        parser.add_argument(
            "--answer",
            default="score",
            choices=("score", "generate"),
            help="score every allowed amount (never invalid) or let the model write its answer",
        )
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--device", default="cpu")
        parser.add_argument(
            "--dtype", default="float32", choices=("float32", "bfloat16", "float16")
        )

    def run(self, args: argparse.Namespace) -> int:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            print(
                "agora mechanism: needs torch and transformers; pip install 'agora[local]' "
                "(or make mechanism, which builds them into a venv of its own)",
                file=sys.stderr,
            )
            return 2
        if not args.model_path.exists():
            print(
                f"agora mechanism: --model-path {args.model_path}: no such file or folder",
                file=sys.stderr,
            )
            return 2
        if args.direction is not None and not args.direction.exists():
            print(
                f"agora mechanism: --direction {args.direction}: no such file; make one with "
                "agora direction sae, or leave it out for the minimal pairs' mean difference",
                file=sys.stderr,
            )
            return 2
        if args.samples < 2:
            print("agora mechanism: --samples: give 2 or more (a CI needs two)", file=sys.stderr)
            return 2
        from agora.worlds.allocation.mechanism import Plan, run_study

        plan = Plan(
            config=args.config,
            model_path=args.model_path,
            out=args.out,
            model_name=args.model_name,
            layers=tuple(args.layers),
            strengths=tuple(args.strengths) if 0.0 in args.strengths else (0.0, *args.strengths),
            samples=args.samples,
            transfer_strength=args.transfer_strength,
            seed=args.seed,
            device=args.device,
            dtype=args.dtype,
            direction=args.direction,
            answer=args.answer,
        )
        try:
            path = run_study(plan, say=lambda line: print(line, file=sys.stderr))
        except (ConfigError, ValueError, OSError) as exc:
            print(f"agora mechanism: {exc}", file=sys.stderr)
            return 2
        print(f"agora mechanism: written to {path}")
        return 0


COMMAND = MechanismCommand()

"""``agora direction``: make a steering-direction file from an SAE feature, or show what a
direction file holds and where it came from.

    agora direction sae --sae PATH --feature N [--layer L] [--model-path P] --out FILE
    agora direction show FILE

``sae``: the feature's decoder row (``directions.sae_feature``: a sae-lens folder, a
``.safetensors`` file or an ``.npz`` with ``W_dec``), saved as a direction file that
``inference.params.steer_direction`` and ``agora mechanism --direction`` take. ``--model-path``
records the weights' SHA-256 in its provenance (the file itself cannot say which model its
SAE was trained on). Nothing here needs torch.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from agora.engine.inference.local import directions


class DirectionCommand:
    name = "direction"
    help = "a steering direction from an SAE feature, or what a direction file holds"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        modes = parser.add_subparsers(dest="mode", required=True)
        sae = modes.add_parser("sae", help="an SAE feature's decoder row as a direction file")
        sae.add_argument(
            "--sae", type=Path, required=True, help="sae-lens folder, .safetensors or .npz"
        )
        sae.add_argument("--feature", type=int, required=True, help="the feature's index")
        sae.add_argument("--layer", type=int, help="where to steer (default: the SAE's cfg.json)")
        sae.add_argument("--model-path", type=Path, help="the model it is for (its hash is kept)")
        sae.add_argument("--out", type=Path, required=True, help="the direction file (.npz)")
        show = modes.add_parser("show", help="a direction file's layers, norms and provenance")
        show.add_argument("file", type=Path)

    def run(self, args: argparse.Namespace) -> int:
        try:
            if args.mode == "sae":
                return self._sae(args)
            return self._show(args.file)
        except directions.DirectionError as exc:
            print(f"agora direction: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # an --out that cannot be written, a model that cannot be read
            print(f"agora direction: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
            return 2

    def _sae(self, args: argparse.Namespace) -> int:
        if args.feature < 0:
            print("agora direction: --feature: give a feature index ≥ 0", file=sys.stderr)
            return 2
        if args.layer is not None and args.layer < 0:
            print("agora direction: --layer: give a block index ≥ 0", file=sys.stderr)
            return 2
        if args.model_path is not None and not args.model_path.exists():
            print(f"agora direction: --model-path {args.model_path}: no such file or folder",
                  file=sys.stderr)  # fmt: skip
            return 2
        try:
            meta, vectors = directions.sae_feature(args.sae, args.feature, args.layer)
        except ImportError:
            print(
                "agora direction: reading a .safetensors file needs safetensors; pip install "
                "safetensors (or 'agora[local]'), or give an .npz with W_dec",
                file=sys.stderr,
            )
            return 2
        meta = msgspec.structs.replace(
            meta,
            model=str(args.model_path or ""),
            model_sha256=directions.file_sha256(args.model_path) if args.model_path else "",
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        directions.save(args.out, meta, vectors)
        (layer,) = vectors
        norm = float(np.linalg.norm(vectors[layer]))
        print(
            f"agora direction: feature {args.feature} of {args.sae} at layer {layer} "
            f"(hidden size {meta.hidden_size}, norm {norm:.4g}) -> {args.out}"
        )
        return 0

    def _show(self, path: Path) -> int:
        meta, vectors = directions.load(path)
        provenance = {
            k: v for k, v in msgspec.structs.asdict(meta).items() if v not in ("", None, [])
        }
        provenance["norms"] = {
            str(layer): round(float(np.linalg.norm(vector)), 6)
            for layer, vector in sorted(vectors.items())
        }
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(provenance)).decode() + "\n")
        return 0


COMMAND = DirectionCommand()

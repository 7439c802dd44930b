"""The peers' venv: Mesa 3.3.1 and Mesa-LLM 0.2.0 in ``bench/.peers-venv``, built once, then reused.

The peers live in their own venv so their pins never touch agora's. A stamp file written after
a successful install records what was asked for; a venv whose stamp differs (or has none, after
an interrupted install) is rebuilt from scratch.

Mesa-LLM 0.2.0 asks for ``mesa[rec]``, whose extras are the browser visualisation (solara,
altair, matplotlib, and through solara ipython, jupyter and more: a third more to download and
install). Nothing measured here draws anything, so Mesa-LLM is installed without its
dependencies and those are named here instead, less the visualisation: its own runtime needs
(litellm, ollama, rich, tenacity, terminal-style, python-dotenv) and networkx, which
``mesa.examples`` imports. litellm is pinned to agora's version, so the litellm rows compare
the same library.

    python -m bench.peers.setup           # build or reuse; prints the versions
    python -m bench.peers.setup --force   # rebuild
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PEERS_VENV = Path(__file__).resolve().parents[1] / ".peers-venv"
STAMP_NAME = ".agora-peers.json"
WITH_DEPENDENCIES = (
    "mesa==3.3.1",
    "networkx",
    "litellm==1.106.2",
    "ollama",
    "rich",
    "tenacity",
    "terminal-style",
    "python-dotenv",
)
WITHOUT_DEPENDENCIES = ("mesa-llm==0.2.0",)
REPORTED = ("mesa", "mesa-llm", "litellm", "numpy", "networkx")


@dataclass(frozen=True)
class PeerVenv:
    python: Path
    versions: dict[str, str]
    # Seconds the install took in this call; None when an existing venv was reused.
    install_s: float | None


def _pip(python: Path, *arguments: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    # pip's warnings about the local indexes would bury the bench tables; shown on failure only.
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise RuntimeError(f"peers: pip install {' '.join(arguments)} failed")


def _wanted() -> dict[str, list[str]]:
    return {"with_dependencies": list(WITH_DEPENDENCIES), "without": list(WITHOUT_DEPENDENCIES)}


def _stamp_matches(venv: Path) -> bool:
    stamp = venv / STAMP_NAME
    if not stamp.is_file() or not (venv / "bin" / "python").exists():
        return False
    try:
        return bool(json.loads(stamp.read_text()) == _wanted())
    except ValueError:
        return False


def peer_versions(python: Path) -> dict[str, str]:
    """The installed versions of the peers and what they run on, read inside the peers' venv."""
    script = (
        "import importlib.metadata as m, json, platform\n"
        f"names = {list(REPORTED)!r}\n"
        "versions = {n: m.version(n) for n in names}\n"
        "versions['python'] = platform.python_version()\n"
        "print(json.dumps(versions))\n"
    )
    result = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


def ensure_peers_venv(venv: Path = PEERS_VENV, *, force: bool = False) -> PeerVenv:
    python = venv / "bin" / "python"
    if not force and _stamp_matches(venv):
        return PeerVenv(python=python, versions=peer_versions(python), install_s=None)
    if venv.exists():
        shutil.rmtree(venv)
    started = time.perf_counter()
    print(f"peers: installing {' '.join(WITH_DEPENDENCIES + WITHOUT_DEPENDENCIES)} into {venv}")
    # The base interpreter of whatever runs this, which is agora's Python (≥ 3.11, as Mesa-LLM).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(python, *WITH_DEPENDENCIES)
    _pip(python, "--no-deps", *WITHOUT_DEPENDENCIES)
    install_s = time.perf_counter() - started
    (venv / STAMP_NAME).write_text(json.dumps(_wanted()))
    return PeerVenv(python=python, versions=peer_versions(python), install_s=install_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild the venv")
    args = parser.parse_args()
    peers = ensure_peers_venv(force=args.force)
    took = "reused" if peers.install_s is None else f"installed in {peers.install_s:.0f} s"
    print(f"peers venv {peers.python.parent.parent} ({took}): {json.dumps(peers.versions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

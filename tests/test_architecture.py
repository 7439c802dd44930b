"""The layering rule: engine/ imports nothing from worlds/, agents/ or policies/."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert found, "import-linter is a dev dependency: pip install -e '.[dev]'"
    return found


def test_import_contracts_hold():
    result = subprocess.run(
        [_lint_imports()], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_the_contract_catches_an_engine_import_of_a_world(tmp_path):
    # Copy the packages, plant a forbidden import, and check that the linter fails.
    for package in ("engine", "worlds", "agents", "policies"):
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "engine" / "leak.py").write_text("import worlds.schelling_city.world\n")
    result = subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "engine.leak -> worlds.schelling_city.world" in result.stdout

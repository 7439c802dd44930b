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
    (tmp_path / "agora").mkdir()
    shutil.copy(REPO / "agora" / "__init__.py", tmp_path / "agora" / "__init__.py")
    for package in ("engine", "worlds", "agents", "policies"):
        shutil.copytree(
            REPO / package,
            tmp_path / "agora" / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "agora" / "engine" / "leak.py").write_text(
        "import agora.worlds.schelling_city.world\n"
    )
    result = subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "agora.engine.leak -> agora.worlds.schelling_city.world" in result.stdout


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run away from the checkout, so only what the install provides can be imported.
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_agora_installs_under_one_import_name(tmp_path):
    found = _python("import agora.engine, agora.worlds, agora.agents, agora.policies", tmp_path)
    assert found.returncode == 0, found.stderr
    for generic in ("agents", "engine", "worlds", "policies"):
        missing = _python(f"import {generic}", tmp_path)
        assert missing.returncode != 0, f"`import {generic}` should not find agora's folder"
        assert "ModuleNotFoundError" in missing.stderr


def test_every_subpackage_is_listed_for_the_install():
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {"agora"}
    for folder in ("engine", "worlds", "agents", "policies"):
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO).parts
            on_disk.add(".".join(("agora", *parts)))
    assert on_disk == listed


def test_no_module_imports_the_folders_by_their_bare_names():
    # A bare `import engine...` next to `agora.engine...` would load every module twice, as two
    # unrelated copies of each record type.
    bare = []
    for folder in ("engine", "worlds", "agents", "policies", "tests", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            if ".peers-venv" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                stripped = line.strip()
                for name in ("engine", "worlds", "agents", "policies"):
                    if stripped.startswith(
                        (f"from {name}.", f"from {name} import", f"import {name}.")
                    ):
                        bare.append(f"{path.relative_to(REPO)}:{number}: {stripped}")
    assert bare == []

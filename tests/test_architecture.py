"""The layers hold (docs/architecture.md): `make lint`'s import contracts pass on the code as it
is, and fail on a copy with one import that breaks a layer or makes a cycle."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent.parent
# Every app the contracts name (a new app is added there, and copied here with the rest).
APPS = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
LINT = str(Path(sys.executable).parent / "lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT, "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


@pytest.fixture
def copy(tmp_path) -> Path:
    for app in APPS:
        shutil.copytree(BASE / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_code_keeps_its_layers():
    result = lint(BASE)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("services/registry.py", "import healthchecks.models", "Apps import one way"),
        ("portal/errors.py", "from services import queries", "Apps import one way"),
        ("portal/egress.py", "import healthchecks.probes", "No import cycles"),
        ("manifest/demo.py", "import automation.models", "Apps import one way"),
        ("healthchecks/reads/history.py", "import checklists.models", "Apps import one way"),
        ("automation/rules.py", "import pages.charts", "Apps import one way"),
    ],
)
def test_an_import_that_breaks_a_layer_fails_lint(copy, module, line, broken):
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint(copy)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout

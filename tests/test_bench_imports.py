"""The benchmarks import one way (bench/README.md, "Layout"; pyproject.toml's contract "Benchmarks
import one way"): `make lint`'s import contracts pass on bench/ as it is, and fail on a copy
where one import closes a loop -- also one hidden inside a function, as bench/health.py's
imports of contended.py and automation_lag.py were, which imported it back."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent.parent
PACKAGES = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]
LINT = str(Path(sys.executable).parent / "lint-imports")
CONTRACT = "Benchmarks import one way"


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
    for package in PACKAGES:
        shutil.copytree(
            BASE / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(BASE / "pyproject.toml", tmp_path)
    return tmp_path


def test_bench_is_under_the_import_contracts_and_keeps_them():
    assert "bench" in PACKAGES
    result = lint(BASE)
    assert result.returncode == 0, result.stdout
    assert f"{CONTRACT} (no import cycles in bench) KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # The harness every phase uses, importing a phase back, inside a function.
        ("bench/health/harness.py", "def _later():\n    from bench.health import throughput"),
        # The shared support module importing a benchmark.
        ("bench/support.py", "import bench.registry"),
        # Two benchmarks importing each other.
        ("bench/automation.py", "from bench.health import automation_lag"),
    ],
)
def test_an_import_that_closes_a_loop_in_bench_fails_lint(copy, module, line):
    path = copy / module
    path.write_text(path.read_text() + f"\n\n{line}  # noqa\n")
    result = lint(copy)
    assert result.returncode != 0
    assert CONTRACT in result.stdout and "BROKEN" in result.stdout

"""The type check (`make typecheck`, part of `make lint`; docs/decisions.md, "Types are checked
where they are written"): mypy with django-stubs passes on the core and the apps' domain
modules as they are, and fails when one of them is given a type error -- the module read from
a changed copy in its place (mypy's --shadow-file), the code itself untouched."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parents[2]
CHECKED = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["mypy"]["files"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")  # the runs share it; the project's is left be


def typecheck(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
        cwd=BASE,
        env={**os.environ, "PORTAL_ENV_FILE": "", "DEBUG": "true"},
        capture_output=True,
        text=True,
    )


def test_the_checked_modules_pass(cache):
    result = typecheck(cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "error"),
    [
        # A signature and what the function does disagree.
        ("services/registry.py", "def _half(n: int) -> str:\n    return n / 2", "return-value"),
        # A model field that does not exist: django-stubs' plugin knows the models.
        ("healthchecks/engine/recording.py", "_X = CheckState().no_such_field", "attr-defined"),
        # A possibly absent row used as if present.
        ("portal/tokens.py", "_Y = ApiToken.objects.first().name", "union-attr"),
        # An API schema called without what it requires: pydantic's plugin knows the schemas.
        (
            "services/deployments.py",
            "from services.schemas import ServiceIn  # noqa: E402\n_Z = ServiceIn()",
            "call-arg",
        ),
    ],
)
def test_a_type_error_in_a_checked_module_fails(cache, tmp_path, module, line, error):
    assert any(module == c or module.startswith(f"{c}/") for c in CHECKED)
    source = (BASE / module).read_text()
    shadow = tmp_path / Path(module).name
    shadow.write_text(f"{source}\n\n{line}\n")
    result = typecheck(cache, "--shadow-file", module, str(shadow))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{module}:" in result.stdout and f"[{error}]" in result.stdout, result.stdout

"""The type check (`make typecheck`, part of `make lint`; docs/decisions.md, "Types are checked
where they are written"): mypy with django-stubs passes on the core and the apps' domain
modules as they are, and fails when one of them is given a type error -- the module read from
a changed copy in its place (mypy's --shadow-file), the code itself untouched."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

BASE = Path(__file__).resolve().parents[2]
CHECKED = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["mypy"]["files"]


# One error written into each of four checked modules, each of a kind the check must see.
INJECTED = [
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
]


def test_the_checked_modules_fail_with_exactly_the_type_errors_written_into_them(tmp_path):
    """One run (a cold mypy costs about two minutes of CPU; five runs on three test workers
    were each cold): the four modules are read from changed copies, and the check must report
    each error, in its module with its code, and nothing else -- so the modules as they are
    pass too."""
    shadows = []
    for module, line, _ in INJECTED:
        assert any(module == c or module.startswith(f"{c}/") for c in CHECKED), module
        shadow = tmp_path / Path(module).name
        shadow.write_text(f"{(BASE / module).read_text()}\n\n{line}\n")
        shadows += ["--shadow-file", module, str(shadow)]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), *shadows],
        cwd=BASE,
        env={**os.environ, "PORTAL_ENV_FILE": "", "DEBUG": "true"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    found = {
        (line.split(":", 1)[0], line.rsplit("[", 1)[-1].rstrip("]"))
        for line in result.stdout.splitlines()
        if ": error: " in line
    }
    assert found == {(module, code) for module, _, code in INJECTED}, result.stdout
    assert f"Found {len(INJECTED)} errors in {len(INJECTED)} files" in result.stdout, result.stdout

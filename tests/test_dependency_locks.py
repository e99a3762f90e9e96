"""The locks (docs/dependencies.md, "Locks and audit"): every dependency pyproject.toml declares
is pinned, within its bounds, with hashes; the runtime lock is the development lock less the
development packages, at the same versions; the venv, CI (make install-dev) and the image (the
Dockerfile) install from them with --require-hashes --no-deps; the venv this suite runs in
holds the locked versions. And the audit's gate (requirements/audit.py): a finding fails, a
finding answered with a reason passes, an audit whose service was unreachable is said to have
not run -- never taken for a pass by pip-audit's own "No known vulnerabilities found"."""

import importlib.util
import json
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(path: Path) -> dict[str, tuple[str, Requirement, list[str]]]:
    """Each locked package: its version, its requirement line, its hashes."""
    text = path.read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        requirement = Requirement(line.split(" --hash=")[0].strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        found[canonicalize_name(requirement.name)] = (specifier.version, requirement, hashes)
    return found


RUNTIME = pins(REQUIREMENTS / "lock.txt")
DEVELOPMENT = pins(REQUIREMENTS / "dev-lock.txt")


def test_every_dependency_is_pinned_within_its_bounds_with_hashes():
    for lock, declared in (
        (RUNTIME, PROJECT["dependencies"]),
        (DEVELOPMENT, PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]),
    ):
        for line in declared:
            wanted = Requirement(line)
            pinned, _, _ = lock[canonicalize_name(wanted.name)]
            assert wanted.specifier.contains(pinned, prereleases=True), (line, pinned)
        assert all(hashes for _, _, hashes in lock.values())


def test_the_runtime_lock_is_the_development_lock_less_the_development_packages():
    assert set(RUNTIME) < set(DEVELOPMENT)
    for name, (pinned, _, _) in RUNTIME.items():
        assert DEVELOPMENT[name][0] == pinned, name
    assert len(RUNTIME) >= 50  # the whole tree, not the direct dependencies only


def test_the_venv_holds_the_locked_versions():
    """What this suite runs on is what CI and the image install (`make install-dev` again
    after the lock changed)."""
    wrong = {}
    for name, (pinned, requirement, _) in DEVELOPMENT.items():
        if requirement.marker and not requirement.marker.evaluate():
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}, "run `make install-dev`: " + str(wrong)


def test_make_and_the_dockerfile_install_from_the_locks_and_nothing_else():
    makefile = (ROOT / "Makefile").read_text()
    assert "PIP_LOCKED = $(PY) -m pip install --quiet --require-hashes --no-deps -r" in makefile
    assert "$(PIP_LOCKED) $(LOCK)" in makefile and "$(PIP_LOCKED) $(DEV_LOCK)" in makefile
    assert "$(VENV)/.installed: pyproject.toml $(LOCK)" in makefile
    installs = re.findall(r"pip install[^\n]*", makefile)
    for line in installs:  # from a lock, or the portal itself without its dependencies
        assert "--require-hashes" in line or "--no-deps -e ." in line, line
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements/lock.txt" in dockerfile
    assert "pip install --no-deps /wheels/" in dockerfile
    checkov = pins(REQUIREMENTS / "checkov-lock.txt")
    assert checkov["checkov"][0] in (REQUIREMENTS / "checkov.in").read_text()


def load_gate():
    spec = importlib.util.spec_from_file_location("audit_gate", REQUIREMENTS / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = load_gate()


def dependency(name, version, *vulns, skip=None):
    if skip:
        return {"name": name, "skip_reason": skip}
    return {"name": name, "version": version, "vulns": list(vulns)}


def vuln(ident, *aliases, fixed=("2.0",)):
    return {"id": ident, "aliases": list(aliases), "fix_versions": list(fixed), "description": ""}


def test_a_finding_fails_and_names_the_package_the_advisory_and_the_fix():
    report = {"dependencies": [dependency("django", "6.1.3", vuln("PYSEC-2026-1", "CVE-1"))]}
    status, lines = gate.verdict(report, {})
    assert status == 1
    assert lines == ["django 6.1.3: PYSEC-2026-1 (fixed in 2.0)"]


def test_a_finding_answered_by_its_id_or_an_alias_passes():
    report = {"dependencies": [dependency("django", "6.1.3", vuln("PYSEC-2026-1", "CVE-1"))]}
    assert gate.verdict(report, {"CVE-1": "the portal never calls the affected function"}) == (
        0,
        [],
    )


def test_an_unreachable_service_is_an_audit_not_run():
    skipped = "Dependency not found on PyPI and could not be audited: django (6.1.3)"
    report = {"dependencies": [dependency("django", "", skip=skipped)] * 3}
    status, lines = gate.verdict(report, {})
    assert status == gate.UNREACHABLE and "could be audited" in lines[0]
    assert gate.verdict(None, {})[0] == gate.UNREACHABLE
    # Some audited and some not: not a network outage -- fails, naming what was skipped.
    mixed = {"dependencies": [dependency("click", "8.5.1"), report["dependencies"][0]]}
    status, lines = gate.verdict(mixed, {})
    assert status == 1 and lines[0].startswith("django") and "not audited" in lines[0]


def test_the_gate_passes_an_audit_not_run_only_when_not_asked_to_require_it(tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": [dependency("a", "", skip="not found")]}))
    assert gate.main(["--report", str(report)]) == 0
    assert "dependency audit NOT RUN" in capsys.readouterr().err
    assert gate.main(["--report", str(report), "--require-service"]) == 1


def test_an_ignored_finding_needs_its_reason(tmp_path):
    path = tmp_path / "ignore.txt"
    path.write_text("# comment\nPYSEC-2026-1 the portal never parses untrusted XML with it\n")
    assert gate.ignored(path) == {"PYSEC-2026-1": "the portal never parses untrusted XML with it"}
    path.write_text("PYSEC-2026-1\n")
    with pytest.raises(SystemExit, match="the reason it is ignored"):
        gate.ignored(path)
    assert gate.ignored() == {}  # the shipped list: no finding answered by ignoring it

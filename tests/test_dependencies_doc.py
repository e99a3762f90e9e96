"""docs/dependencies.md explains every dependency pyproject.toml declares, with the lower bound
pyproject.toml holds ("Lower bounds in pyproject.toml are the oldest versions with the features
we use"), and nothing else; the versions installed satisfy those bounds. A dependency added,
dropped or raised on one side only fails here."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DOC = (ROOT / "docs" / "dependencies.md").read_text()


def section(title: str) -> list[str]:
    """The first cell of each row of the table under ``## title``."""
    body = DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")][2:]  # header, rule
    return [row.split("|")[1].strip() for row in rows]


def lower_bound(specifier: SpecifierSet) -> str | None:
    bounds = [s.version for s in specifier if s.operator == ">="]
    return bounds[0] if bounds else None


def test_each_runtime_dependency_is_explained_with_its_lower_bound():
    declared = {}
    for line in PROJECT["dependencies"]:
        requirement = Requirement(line)
        declared[canonicalize_name(requirement.name)] = lower_bound(requirement.specifier)
    documented = {}
    for cell in section("Runtime"):
        name, bound = re.fullmatch(r"([\w.\-\[\],]+) >= ([\d.]+)", cell).groups()
        documented[canonicalize_name(name.split("[")[0])] = bound
    assert documented == declared


def test_each_development_dependency_is_explained():
    declared = {
        canonicalize_name(Requirement(d).name) for d in PROJECT["optional-dependencies"]["dev"]
    }
    documented = {
        canonicalize_name(name.strip())
        for cell in section("Development")
        for name in cell.split(",")
    }
    assert documented == declared


def test_the_installed_versions_satisfy_the_bounds():
    for line in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        installed = Version(version(requirement.name))
        assert requirement.specifier.contains(installed, prereleases=True), (line, installed)

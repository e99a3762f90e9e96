"""portalctl is also a distribution of its own, built from the same source
(portalctl/pyproject.toml; docs/decisions.md, "portalctl is a distribution of its own"): what
it declares stays what the client imports, in step with the portal's own distribution, which
ships the same package and command. A client module that starts importing another package,
or a bound raised on one side only, fails here rather than in a pipeline's `pip install`."""

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "portalctl"
CLIENT = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())
PORTAL = tomllib.loads((ROOT / "pyproject.toml").read_text())


def imported_packages() -> set[str]:
    """The top-level packages the client's modules import, the standard library aside."""
    found = set()
    for path in CLIENT_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"portalctl", "__future__"}


def requirements(project: dict) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def test_the_client_distribution_requires_exactly_what_the_client_imports():
    distributions = packages_distributions()
    needed = {canonicalize_name(distributions[name][0]) for name in imported_packages()}
    assert needed == set(requirements(CLIENT["project"])) == {"click", "pyyaml"}


def test_it_is_the_portals_package_command_and_bounds():
    client, portal = CLIENT["project"], PORTAL["project"]
    assert CLIENT["tool"]["setuptools"]["packages"] == ["portalctl"]
    assert CLIENT["tool"]["setuptools"]["package-dir"] == {"portalctl": "."}
    assert client["scripts"] == {"portalctl": portal["scripts"]["portalctl"]}
    assert (client["version"], client["requires-python"]) == (
        portal["version"],
        portal["requires-python"],
    )
    portal_requirements = requirements(portal)
    for name, requirement in requirements(client).items():
        assert requirement.specifier == portal_requirements[name].specifier, name
    # The portal's distribution still ships the client's package (and so its command).
    assert "portalctl*" in PORTAL["tool"]["setuptools"]["packages"]["find"]["include"]

"""The README ("Errors") lists the codes an API error may carry: every code the portal's code
can answer with is on that list, and the list names none the code does not have.

The codes are read from the source (its syntax tree): the first text argument of
``error_response``/``error_body``, every ``code="..."`` given to an error, the default code of
each error class (``portal.errors``) wherever one is made without a code of its own, and the
codes a helper documented as returning one returns.
A new code without its line in the README fails here.
"""

import ast
import re
from pathlib import Path

from django.conf import settings

BASE = Path(settings.BASE_DIR)
APPS = ["portal", "services", "healthchecks", "automation", "checklists", "manifest", "pages"]
# Codes that never reach an API client, with where they are shown instead.
NOT_THE_APIS = {"has_services": "the admin's only: deleting a team that has services"}


def class_defaults() -> dict[str, str]:
    """Error class -> its default code, from ``status, code = 404, "not_found"``."""
    tree = ast.parse((BASE / "portal" / "errors.py").read_text())
    defaults = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.Assign):
                for target in item.targets:
                    names = target.elts if isinstance(target, ast.Tuple) else [target]
                    values = item.value.elts if isinstance(item.value, ast.Tuple) else [item.value]
                    for name, value in zip(names, values, strict=False):
                        if getattr(name, "id", "") == "code" and isinstance(value, ast.Constant):
                            defaults[node.name] = value.value
    return defaults


def returned_codes(function: ast.FunctionDef) -> list[str]:
    """The text each ``return "code", ...`` of a function gives first (none for "")."""
    codes = []
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            first = node.value.elts[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
                codes.append(first.value)
    return codes


def codes_in_the_source() -> dict[str, str]:
    """Code -> a file that answers with it."""
    defaults = class_defaults()
    found: dict[str, str] = {}
    for app in APPS:
        for path in sorted((BASE / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and "error code" in (
                    ast.get_docstring(node) or ""
                ):  # a helper that returns the code to raise (services.lifecycle.blocking)
                    for code in returned_codes(node):
                        found.setdefault(code, str(path.relative_to(BASE)))
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                given = [
                    k.value.value
                    for k in node.keywords
                    if k.arg == "code" and isinstance(k.value, ast.Constant)
                ]
                if name in ("error_response", "error_body"):
                    texts = [a.value for a in node.args if isinstance(a, ast.Constant)]
                    given += [t for t in texts if isinstance(t, str)][:1]
                elif name in defaults and not any(k.arg == "code" for k in node.keywords):
                    given.append(defaults[name])
                for code in given:
                    found.setdefault(code, str(path.relative_to(BASE)))
    return found


def codes_in_the_readme() -> set[str]:
    text = (BASE / "README.md").read_text()
    errors = text[text.index("\n### Errors") :]
    listed = errors[errors.index("Codes:") : errors.index("Every response")]
    return set(re.findall(r"`([a-z_]+)`", listed))


def test_the_source_is_read():
    found = codes_in_the_source()
    assert {"not_found", "stale_version", "uri_too_long", "database_unavailable"} <= set(found)


def test_every_code_the_api_answers_with_is_in_the_readme_and_no_other():
    found = set(codes_in_the_source()) - set(NOT_THE_APIS)
    listed = codes_in_the_readme() - {"Retry-After"}
    assert found - listed == set(), f"answered, not in the README: {sorted(found - listed)}"
    assert listed - found == set(), f"in the README, never answered: {sorted(listed - found)}"

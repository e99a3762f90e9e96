"""What pytest collects is the suite's tests, not its helpers (issue 28, item 3): conftest's
``test_database_url()``, a helper that gives the test database's URL to the processes a test
starts, was collected and run as a test in every module that imported it under its own name
(tests/system/test_beat_promises.py, tests/system/test_make_targets.py).

pytest collects every module-level function of a test module whose name starts with
``test`` (``python_functions``' default), wherever it was defined: an imported helper so
named becomes a test of each module that imports it."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def is_test_module(path: Path) -> bool:
    """pytest's default ``python_files``: ``test_*.py`` and ``*_test.py``."""
    return path.name.startswith("test_") or path.name.endswith("_test.py")


def modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def collected_imports(path: Path) -> list[str]:
    """The names a test module binds at its top level by importing them that pytest would
    collect as tests of that module."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound.startswith("test"):
                    found.append(f"{bound} (line {node.lineno})")
    return found


def helpers_named_as_tests(path: Path) -> list[str]:
    """Functions of a module pytest does not collect from (conftest.py, a helper module)
    whose name would make them a test in any test module that imports them."""
    return [
        f"{node.name} (line {node.lineno})"
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]


def test_no_test_module_imports_a_name_pytest_would_collect_as_one_of_its_tests():
    offences = {
        str(path.relative_to(ROOT)): found
        for path in modules()
        if is_test_module(path) and (found := collected_imports(path))
    }
    assert offences == {}


def test_no_helper_module_defines_a_function_named_as_a_test():
    offences = {
        str(path.relative_to(ROOT)): found
        for path in modules()
        if not is_test_module(path) and (found := helpers_named_as_tests(path))
    }
    assert offences == {}


def test_the_checks_catch_the_helper_that_was_collected(tmp_path):
    """Both checks find what issue 28 found: the helper in conftest, and its import."""
    conftest = tmp_path / "conftest.py"
    conftest.write_text("def test_database_url() -> str:\n    return 'postgres://'\n")
    module = tmp_path / "test_beat.py"
    module.write_text("from tests.conftest import test_database_url\n")
    assert helpers_named_as_tests(conftest) == ["test_database_url (line 1)"]
    assert collected_imports(module) == ["test_database_url (line 1)"]
    renamed = tmp_path / "test_renamed.py"
    renamed.write_text("from tests.conftest import test_database_url as database_url\n")
    assert collected_imports(renamed) == []

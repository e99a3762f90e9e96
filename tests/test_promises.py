"""The ledger of promises (docs/promises.md) stays true to the docs and the suite.

Every line of the ledger names the test that proves it (or, for a measured figure, where it
was measured), and each named test exists; every figure the README and docs/*.md state (a
time, a size, a share, a bound, an exit code) appears on a line of the ledger's section for
that file. So a new promise without a test, or a test renamed away from its promise, fails
here rather than going unnoticed.
"""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "docs" / "promises.md"
DOCUMENTS = [
    "README.md",
    *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if p != LEDGER),
]

_NUMBER = r"\d+(?:[.,]\d+)*"
# (A bare "s" needs a space before it: "503s" is a plural, "2 s" two seconds.)
_UNIT = (
    r"(?:ms|µs|(?<=\s)s|seconds?|min|minutes?|h|hours?|days?|weeks?|KiB|MiB|GiB|KB|MB|GB|kB"
    r"|bytes?|%|x|[a-z]+/s)"
)
FIGURE = re.compile(
    rf"(?<![\w.$-])(?:(?:<=|>=|≤|≥|<|>)\s?{_NUMBER}"
    rf"|(?:at most|at least|up to|within|exits?|exit code) {_NUMBER}(?:\s?{_UNIT}(?![\w]))?"
    rf"|{_NUMBER}(?:\s?(?:-|to)\s?{_NUMBER})?\s?{_UNIT}(?![\w]))"
)
TEST_REF = re.compile(r"tests/[\w/]+\.py::[\w:]+(?:\[[^\]\s]*\])?")
BENCH_REF = re.compile(r"bench/[\w/.-]+")


def prose(text: str) -> str:
    """What a reader takes as statements: fenced blocks (examples, sample output) left out,
    HTML comments too."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def figures(text: str) -> set[str]:
    return {" ".join(m.group(0).split()) for m in FIGURE.finditer(prose(text).replace("`", ""))}


def ledger_sections() -> dict[str, list[str]]:
    """The ledger's bullets under each ``## <file>`` heading (a bullet may wrap)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in LEDGER.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip().strip("`"), [])
        elif current is not None and line.startswith("- "):
            current.append(line[2:])
        elif current is not None and current and line.startswith("  ") and line.strip():
            current[-1] += " " + line.strip()
    return sections


@cache
def defined_tests(path: str) -> set[str]:
    """``name`` and ``Class::name`` for each test function in a test module."""
    tree = ast.parse((ROOT / path).read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            found |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return found


def missing_reference(ref: str) -> str | None:
    path, _, name = ref.partition("::")
    if not (ROOT / path).is_file():
        return f"{ref}: no file {path}"
    if name.split("[")[0] not in defined_tests(path):
        return f"{ref}: no test {name} in {path}"
    return None


def test_the_ledger_has_a_section_for_every_document():
    assert sorted(ledger_sections()) == sorted([*DOCUMENTS, "portalctl --help"])


def test_every_line_names_a_test_that_exists():
    problems = []
    for section, lines in ledger_sections().items():
        for line in lines:
            tests, benches = TEST_REF.findall(line), BENCH_REF.findall(line)
            if not tests and not benches:
                problems.append(f"{section}: names no test: {line[:100]}")
            problems += [p for ref in tests if (p := missing_reference(ref))]
            problems += [f"{ref}: no such file" for ref in benches if not (ROOT / ref).exists()]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_figure_in_the_docs_is_in_the_ledger(document):
    stated = figures((ROOT / document).read_text())
    listed = figures(" ".join(ledger_sections().get(document, [])))
    unlisted = sorted(stated - listed)
    assert not unlisted, f"{document} states figures docs/promises.md does not list: {unlisted}"


def test_the_figure_pattern_finds_what_a_reader_would_call_one():
    text = (
        "answers 503 within 2 s; at most 16 connections; limit (<= 500); 8 KiB a header; "
        "p99 50.1 ms; 0.25; exits 1 when refused; 3,000 checks/s; 1.85-1.91x; no 503s\n"
        "```\ncurl ... # 10 s later\n```"
    )
    assert figures(text) == {
        "within 2 s",
        "at most 16",
        "<= 500",
        "8 KiB",
        "50.1 ms",
        "exits 1",
        "3,000 checks/s",
        "1.85-1.91x",
    }

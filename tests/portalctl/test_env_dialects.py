"""Dotenv dialects (issue 28, item 6): `LEGACY_FLAGS=["a","b"]` was imported as the string
`[a,b]` -- shell quoting -- where python-dotenv and `docker --env-file` read `["a","b"]`.
The import now reads `shell` or `docker` text, `auto` by default (services.config_import
.read_dotenv; docs/decisions.md, "Dotenv dialects"), and names each key whose value another
reader would take otherwise. The reader's pure parts, then `portalctl config import` against
a live portal.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.config_import import read_dotenv
from services.dotenv import env_key, env_value, to_dotenv
from services.models import ConfigVersion
from tests.portalctl.conftest import write


def test_auto_reads_plain_key_value_text_as_docker_does():
    text = 'LEGACY_FLAGS=["a","b"]\nPATH_ON_WINDOWS=C:\\temp\nEMPTY=\n  # a comment\n'
    read = read_dotenv(text)
    assert read.dialect == "docker"
    assert read.values == {
        "LEGACY_FLAGS": '["a","b"]',
        "PATH_ON_WINDOWS": "C:\\temp",
        "EMPTY": "",
    }
    assert read.warnings == []


def test_docker_reads_every_value_literally_and_says_what_others_would_not():
    text = "\ufeffA='quoted'\nB=x # y\nC= spaced \r\nD=a=b\n#E=comment\nA=again\n"
    read = read_dotenv(text, "docker")
    assert read.values == {"A": "again", "B": "x # y", "C": " spaced ", "D": "a=b"}
    assert [(w["key"], w["line"]) for w in read.warnings] == [
        ("A", 1),  # the quotes kept
        ("B", 2),  # ' #' kept
        ("C", 3),  # the space kept
        ("A", 6),  # set again
    ]
    assert "quotes around the value are part of it" in read.warnings[0]["reason"]
    assert read.warnings[3]["reason"] == "set again: line 1 is overridden by this one"


def test_auto_reads_quoted_or_exported_text_as_a_shell_does():
    for text in ("A='x y'\nB=[\"a\"]\n", 'A="x y"\nB=["a"]\n', 'export A=x\nB=["a"]\n'):
        read = read_dotenv(text)
        assert read.dialect == "shell", text
        assert read.values["B"] == "[a]"
        assert read.warnings == [{"key": "B", "line": 2, "reason": read.warnings[0]["reason"]}]
        assert "quotes inside the value were removed" in read.warnings[0]["reason"]


def test_a_value_quoted_whole_is_no_warning_in_the_shell_dialect():
    """Quotes around a whole value are taken away by every reader but docker's: not a change
    to warn of (the portal's own export quotes every value so)."""
    read = read_dotenv("A='x y'\nB=\"x y\"\nC='it'\"'\"'s'\nD=plain\n", "shell")
    assert read.values == {"A": "x y", "B": "x y", "C": "it's", "D": "plain"}
    assert read.warnings == []


DOCUMENTS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    st.text(st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=20)
    | st.integers()
    | st.booleans()
    | st.lists(st.text(max_size=5), max_size=3),
    min_size=1,
    max_size=6,
)


@given(DOCUMENTS)
def test_auto_reads_back_whatever_the_portal_exports_with_nothing_to_warn_of(values):
    """A property over documents: the portal's `--format env` output is read back by the
    default dialect exactly, and no value in it draws a warning."""
    text = to_dotenv(values)
    read = read_dotenv(text)
    assert read.dialect == "shell"
    assert read.warnings == []
    assert read.values == {env_key([key]): env_value(value) for key, value in values.items()}


# --- portalctl config import --dialect, against a live portal -------------------------------

live = pytest.mark.django_db(transaction=True)


@pytest.fixture
def legacy(portalctl, tmp_path):
    manifest = "teams: [{name: shop}]\nservices: [{name: legacy, team: shop}]"
    assert portalctl("apply", write(tmp_path / "l.yaml", manifest)).exit_code == 0


@live
def test_portalctl_imports_a_docker_style_file_and_prints_how_it_read_it(
    portalctl, legacy, tmp_path
):
    path = write(tmp_path / "legacy.env", 'LEGACY_FLAGS=["a","b"]\nLEGACY_NOTE=x # y\n')
    result = portalctl("config", "import", "legacy", path, "--prefix", "LEGACY_")
    assert result.exit_code == 0, result.output
    assert "read as docker" in result.stdout
    assert "warning LEGACY_NOTE (line 2): ' #' and what follows are part of the value" in (
        result.stdout
    )
    assert ConfigVersion.objects.get().values == {"flags": ["a", "b"], "note": "x # y"}


@live
def test_portalctl_dialect_shell_warns_of_the_quotes_it_removed(portalctl, legacy, tmp_path):
    path = write(tmp_path / "legacy.env", 'LEGACY_FLAGS=["a","b"]\n')
    result = portalctl(
        "config", "import", "legacy", path, "--prefix", "LEGACY_", "--dialect", "shell", "--json"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["dialect"] == "shell"
    assert [w["key"] for w in body["parse_warnings"]] == ["LEGACY_FLAGS"]
    assert ConfigVersion.objects.get().values == {"flags": "[a,b]"}


@live
def test_portalctl_names_a_line_docker_would_fill_from_its_environment(portalctl, legacy, tmp_path):
    path = write(tmp_path / "legacy.env", "LEGACY_A=1\nLEGACY_SECRET\n")
    result = portalctl("config", "import", "legacy", path, "--dialect", "docker")
    assert result.exit_code == 1
    assert "dotenv:2: a name alone: docker takes its value from the environment" in result.stderr
    assert not ConfigVersion.objects.exists()


@live
def test_portalctl_dialect_without_a_file_is_bad_usage(portalctl, legacy):
    result = portalctl("config", "import", "legacy", "--prefix", "X_", "--dialect", "docker")
    assert result.exit_code == 2
    assert "--dialect reads a dotenv FILE" in result.stderr

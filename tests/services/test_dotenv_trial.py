"""Breaking trial of the dotenv dialects (issue 28, item 6): a byte-order mark before a
shell-style file, line separators a value may hold, CRLF, `=` inside values, secrets in what
the answer says, and what the portal's own export gives back."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.errors import InvalidInput
from services.config_import import read_dotenv
from services.dotenv import env_key, env_value, to_dotenv
from services.models import ConfigVersion
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

# Characters str.splitlines breaks at besides the line feed: a value may hold any of them.
SEPARATORS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@pytest.mark.parametrize("dialect", ["auto", "shell", "docker"])
def test_a_byte_order_mark_is_dropped_whichever_dialect_reads_the_text(dialect):
    """A shell-style file saved with a BOM (a Windows editor) had its first line refused:
    only the docker reader dropped the mark, and auto reads quoted text as shell."""
    text = '\ufeffexport GREETING="hello world"\r\nPORT=8080\r\n'
    if dialect == "docker":
        with pytest.raises(InvalidInput):  # `export NAME` is no docker name: refused by line
            read_dotenv(text, dialect)
        text = text.replace("export ", "")
    read = read_dotenv(text, dialect)
    expected = '"hello world"' if dialect == "docker" else "hello world"
    assert read.values == {"GREETING": expected, "PORT": "8080"}


@pytest.mark.parametrize("dialect", ["auto", "shell", "docker"])
def test_a_line_separator_inside_a_value_is_part_of_it(dialect):
    text = "".join(f"K{i}=a{sep}b\n" for i, sep in enumerate(SEPARATORS))
    read = read_dotenv(text, dialect)
    assert read.values == {f"K{i}": f"a{sep}b" for i, sep in enumerate(SEPARATORS)}
    assert read.warnings == []


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
        st.text(st.sampled_from(f"ab '\"#\\={SEPARATORS}"), max_size=12),
        max_size=5,
    )
)
def test_the_portals_export_of_values_with_line_separators_reads_back_exactly(values):
    """docs/promises.md: the portal's own export reads back exactly with no warning -- the
    property there left out every control and separator character; U+2028, NEL, form feed
    and a lone carriage return broke a value in two."""
    read = read_dotenv(to_dotenv(values))
    assert read.values == {env_key([key]): env_value(value) for key, value in values.items()}
    assert read.warnings == []


def test_the_portals_export_of_a_multi_line_value_reads_back():
    """Issue 28's breaking trial: a value with line feeds (a PEM certificate) is exported as
    one single-quoted value over several lines, as a shell reads it; the shell dialect read
    it line by line ("unterminated quote"). A quoted value now goes on over lines."""
    values = {"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n# not a comment\n\n-----END-----"}
    assert read_dotenv(to_dotenv(values)).values == {"CERT": values["cert"]}
    assert read_dotenv(to_dotenv(values), "shell").values == {"CERT": values["cert"]}


def test_a_quote_left_open_to_the_end_is_refused_naming_its_line():
    with pytest.raises(InvalidInput) as refused:
        read_dotenv("A=1\nB='never closed\nC=3\n", "shell")
    assert refused.value.fields == {"dotenv:2": "unterminated ' quote (to the end of the file)"}


@pytest.mark.parametrize("dialect", ["auto", "shell", "docker"])
def test_equals_signs_inside_a_value_are_part_of_it(dialect):
    read = read_dotenv("URL=postgres://u:p@h/db?sslmode=require&a==b\n", dialect)
    assert read.values == {"URL": "postgres://u:p@h/db?sslmode=require&a==b"}


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        ("DB_PASSWORD='hunter2-secret\n", "shell"),
        ('DB_PASSWORD="hunter2-secret" # hunter2-secret\nX="a"b\n', "shell"),
        ("DB_PASSWORD='hunter2-secret'\nDB_PASSWORD=hunter2-secret #x\n", "docker"),
        ("hunter2-secret\n", "docker"),
    ],
)
def test_no_value_appears_in_what_the_reader_says(text, dialect):
    try:
        said = str(read_dotenv(text, dialect).warnings)
    except InvalidInput as exc:
        said = f"{exc.message} {exc.fields}"
    assert "hunter2" not in said


@pytest.mark.django_db
def test_a_shell_style_file_with_a_byte_order_mark_imports_through_the_api(make_token):
    ServiceFactory(name="legacy")
    client = ApiClient(make_token(["config:read", "config:write"]).secret)
    text = '\ufeffLEGACY_NAME="hello world"\r\nLEGACY_FLAGS=\'["a","b"]\'\r\n'
    res = client.call(
        "POST", "/api/services/legacy/config/import", {"dotenv": text, "prefix": "LEGACY_"}
    )
    assert res.status_code == 201, res.json()
    assert res.json()["dialect"] == "shell" and res.json()["parse_warnings"] == []
    assert ConfigVersion.objects.get().values == {"name": "hello world", "flags": ["a", "b"]}

"""The import's pure parts: reading dotenv text, keys to fields, typing values, proposing a
schema (services.config_import; no database)."""

import pytest

from portal.errors import InvalidInput
from services import config_schema
from services.config_import import (
    coerce,
    coerce_document,
    document_from_env,
    infer,
    parse_dotenv,
    propose_schema,
)
from services.dotenv import to_dotenv


def test_it_reads_the_shells_quoting():
    text = """# comment
export A=1
B='it'"'"'s'
C="say \\"hi\\"\\nbye"
D=hello world  # note
E=
F='{"a": 1}'
G=a#b
H= # only a note
I='  kept  '
"""
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "it's",
        "C": 'say "hi"\nbye',
        "D": "hello world",
        "E": "",
        "F": '{"a": 1}',
        "G": "a#b",
        "H": "",
        "I": "  kept  ",
    }


def test_it_reads_back_what_the_portal_exports():
    values = {"quote": "it's $HOME", "n": 3, "flag": True, "list": [1, "a"]}
    assert parse_dotenv(to_dotenv(values)) == {
        "FLAG": "true",
        "LIST": '[1,"a"]',
        "N": "3",
        "QUOTE": "it's $HOME",
    }


def test_python_dotenv_would_lose_what_the_import_reads():
    """Why the import keeps a parser of its own beside python-dotenv (docs/decisions.md, "Two
    dotenv readers"): python-dotenv, which reads the local `.env`, drops a value quoted the
    way the portal's own export quotes it and takes a line that is not KEY=value as a name
    with no value, where the import must read the first back and refuse the second by line."""
    import io

    from dotenv import dotenv_values

    text = to_dotenv({"quote": "it's"}) + "NOT_A_PAIR\n"
    assert parse_dotenv(to_dotenv({"quote": "it's"})) == {"QUOTE": "it's"}
    read = dotenv_values(stream=io.StringIO(text))
    assert read.get("QUOTE") != "it's"
    assert read.get("NOT_A_PAIR", "missing") is None
    with pytest.raises(InvalidInput) as caught:
        parse_dotenv(text)
    assert list(caught.value.fields) == [f"dotenv:{len(text.splitlines())}"]


def test_it_names_each_line_it_cannot_read():
    with pytest.raises(InvalidInput) as caught:
        parse_dotenv("OK=1\nnot a pair\n1BAD=x\nQ='open\nR=2\n")
    # A quote left open goes on over the lines after it, as a shell reads it: to the end.
    assert caught.value.fields == {
        "dotenv:2": "not a KEY=value line",
        "dotenv:3": "not a KEY=value line",
        "dotenv:4": "unterminated ' quote (to the end of the file)",
    }


def test_keys_lose_the_prefix_lower_case_and_nest_on_double_underscores():
    env = {"APP_DB__PORT": "5432", "APP_DB__HOST": "db", "APP_LOG_LEVEL": "INFO", "HOME": "/"}
    document, mapping = document_from_env(env, "APP_")
    assert document == {"db": {"host": "db", "port": "5432"}, "log_level": "INFO"}
    assert mapping == {
        "APP_DB__HOST": "db.host",
        "APP_DB__PORT": "db.port",
        "APP_LOG_LEVEL": "log_level",
    }


def test_keys_that_collide_or_are_not_names_are_refused_by_name():
    with pytest.raises(InvalidInput) as caught:
        document_from_env({"DB": "x", "DB__PORT": "1", "A__": "1", "B-C": "2"})
    assert set(caught.value.fields) == {"env.DB__PORT", "env.A__", "env.B-C"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("30", 30),
        ("-4", -4),
        ("0.25", 0.25),
        ("1e3", 1000.0),
        ("true", True),
        ("False", False),
        ("[1, 2]", [1, 2]),
        ('{"a": {"b": null}}', {"a": {"b": None}}),
        ("007", "007"),  # a leading zero: an identifier, not a number
        ("yes", "yes"),  # undeclared, only true/false are booleans
        ("1e999", "1e999"),  # not finite: kept as text
        ("9" * 30, "9" * 30),  # beyond 64 bits: kept as text
        ("[1, NaN]", "[1, NaN]"),  # not JSON a database can hold
        ("{broken", "{broken"),
        ("", ""),
    ],
)
def test_an_undeclared_value_takes_the_type_it_reads_as(text, value):
    assert infer(text) == value
    assert type(infer(text)) is type(value)


def test_a_declared_type_wins_and_a_value_that_cannot_have_it_is_named():
    schema = {
        "type": "object",
        "properties": {
            "zip": {"type": "string"},
            "port": {"type": ["integer", "null"]},
            "cache": {"type": "boolean"},
            "db": {"type": "object", "properties": {"ratio": {"type": "number"}}},
        },
    }
    ok = coerce_document(
        {"zip": "01234", "port": "8080", "cache": "on", "db": {"ratio": "2"}}, schema
    )
    assert ok == {"zip": "01234", "port": 8080, "cache": True, "db": {"ratio": 2}}
    with pytest.raises(InvalidInput) as caught:
        coerce_document({"port": "80.5", "cache": "maybe", "db": {"ratio": "x"}}, schema)
    assert set(caught.value.fields) == {"values.port", "values.cache", "values.db.ratio"}
    assert coerce("[1]", "array") == [1]
    with pytest.raises(ValueError, match="not a JSON object"):
        coerce("[1]", "object")


def test_the_proposed_schema_types_every_field_and_keeps_credentials_secret():
    values = {
        "api_timeout": 30,
        "enable_caching": True,
        "ratio": 0.5,
        "hosts": ["a"],
        "db_password": "hunter2",
        "rag_database_url": "postgres://rag:pw@db/rag",
        "public_url": "https://example.com/x",
        "db": {"port": 5432},
    }
    schema = propose_schema(values)
    props = schema["properties"]
    assert props["api_timeout"] == {"type": "integer"}
    assert props["enable_caching"] == {"type": "boolean"}
    assert props["ratio"] == {"type": "number"}
    assert props["hosts"] == {"type": "array"}
    assert props["public_url"] == {"type": "string"}
    assert props["db"]["properties"] == {"port": {"type": "integer"}}
    assert schema["required"] == sorted(values) and schema["additionalProperties"] is False
    normalised, _form = config_schema.normalise(schema)  # the portal accepts it as it is
    assert config_schema.secret_paths(normalised) == [["db_password"], ["rag_database_url"]]

"""Schemas: the seed's form converted, JSON Schema checked, secrets found, defaults merged."""

import pytest

from portal.errors import InvalidInput
from services import config_schema
from tests.factories import SEED_SCHEMA


def test_the_seed_example_converts_to_json_schema():
    schema, form = config_schema.normalise(SEED_SCHEMA)
    assert form == "seed"
    assert schema["required"] == ["rag_database_url", "api_timeout"]
    props = schema["properties"]
    assert props["api_timeout"] == {"type": "integer", "default": 30, "minimum": 1, "maximum": 300}
    assert props["enable_caching"] == {"type": "boolean", "default": True}
    assert props["log_level"]["enum"] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert set(props) == {
        "rag_database_url",
        "api_timeout",
        "max_retries",
        "enable_caching",
        "log_level",
    }


def test_seed_min_and_max_mean_length_for_strings_and_lists():
    schema = config_schema.from_seed_form(
        {
            "field_types": {"name": "str", "hosts": "list", "ratio": "float"},
            "validation_rules": {
                "name": {"min": 2, "max": 8},
                "hosts": {"min": 1},
                "ratio": {"max": 1.0},
            },
            "secret_fields": ["name"],
        }
    )
    assert schema["properties"]["name"] == {
        "type": "string",
        "minLength": 2,
        "maxLength": 8,
        "writeOnly": True,
    }
    assert schema["properties"]["hosts"] == {"type": "array", "minItems": 1}
    assert schema["properties"]["ratio"] == {"type": "number", "maximum": 1.0}


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        ({"field_types": {"port": "integer"}}, "field_types.port", "unknown type 'integer'"),
        (
            {"field_types": {"a": "str"}, "validation_rules": {"a": {"between": 1}}},
            "validation_rules.a.between",
            "unknown rule",
        ),
        (
            {"field_types": {"a": "int"}, "validation_rules": {"a": {"min": "one"}}},
            "validation_rules.a.min",
            "must be a number",
        ),
        (
            {"field_types": {"a": "int"}, "field_defaults": {"b": 1}},
            "field_defaults.b",
            "not a declared field",
        ),
        ({"required_fields": "a,b"}, "required_fields", "list of field names"),
        (
            {"field_types": {"a": "int"}, "secret_fields": ["zz"]},
            "secret_fields.zz",
            "not a declared field",
        ),
    ],
)
def test_a_bad_seed_form_names_the_field(document, field, reason):
    with pytest.raises(InvalidInput) as caught:
        config_schema.normalise(document)
    assert reason in caught.value.fields[field]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"type": "object", "properties": {"port": {"type": "integr"}}}, "properties.port.type"),
        ({"type": "object", "properties": {"port": {"minimum": "ten"}}}, "properties.port.minimum"),
        ({"type": "array"}, "type"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "$ref"),
    ],
)
def test_an_invalid_json_schema_is_refused_with_where(document, field):
    with pytest.raises(InvalidInput) as caught:
        config_schema.normalise(document)
    assert field in caught.value.fields


def test_secret_paths_follow_objects_and_arrays():
    schema = {
        "type": "object",
        "properties": {
            "db": {
                "type": "object",
                "properties": {
                    "password": {"type": "string", "writeOnly": True},
                    "host": {"type": "string"},
                },
            },
            "api_key": {"type": "string", "writeOnly": True},
            "webhooks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"token": {"type": "string", "writeOnly": True}},
                },
            },
        },
    }
    assert config_schema.secret_paths(schema) == [
        ["db", "password"],
        ["api_key"],
        ["webhooks", "*", "token"],
    ]


def test_defaults_are_merged_deeply_without_overriding_values():
    schema = {
        "type": "object",
        "properties": {
            "timeout": {"type": "integer", "default": 30},
            "db": {
                "type": "object",
                "properties": {"host": {"default": "localhost"}, "port": {"default": 5432}},
            },
            "tags": {"type": "array"},
        },
    }
    merged = config_schema.merge_defaults(schema, {"db": {"port": 6432}, "extra": 1})
    assert merged == {"timeout": 30, "db": {"host": "localhost", "port": 6432}, "extra": 1}


def test_closed_refuses_unknown_keys_only_where_properties_are_listed():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {}}},
        "$defs": {"open": {"type": "object"}},
    }
    closed = config_schema.closed(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["$defs"]["open"]
    explicit = config_schema.closed({"properties": {}, "additionalProperties": True})
    assert explicit["additionalProperties"] is True

"""Configuration schemas: the seed's ServiceConfigSchema form, JSON Schema, and validation.

A schema is stored as JSON Schema (draft 2020-12). The seed's form -- ``required_fields``,
``optional_fields``, ``field_types`` (``str int float bool list dict``), ``field_defaults``,
``validation_rules`` (``min``/``max``/``choices``/``pattern``), ``secret_fields`` -- is
converted on the way in. A field is secret when its JSON Schema says ``"writeOnly": true``.
"""

import copy
import json
from functools import lru_cache

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from portal.errors import InvalidInput, field_path

SEED_KEYS = {
    "required_fields",
    "optional_fields",
    "field_types",
    "field_defaults",
    "validation_rules",
    "secret_fields",
    "description",
}
SEED_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
_RULE_KEYWORDS = {
    "string": {"min": "minLength", "max": "maxLength"},
    "array": {"min": "minItems", "max": "maxItems"},
    "object": {"min": "minProperties", "max": "maxProperties"},
}
_NUMBER_RULES = {"min": "minimum", "max": "maximum"}
_ROOT = "urn:portal:config-schema"


def is_seed_form(document: dict) -> bool:
    return bool(SEED_KEYS & document.keys()) and "properties" not in document


def from_seed_form(document: dict) -> dict:
    """Convert the seed's ServiceConfigSchema form to JSON Schema, with per-field errors."""
    errors: dict[str, str] = {}
    unknown = sorted(document.keys() - SEED_KEYS)
    for key in unknown:
        errors[key] = f"not a ServiceConfigSchema key; known: {', '.join(sorted(SEED_KEYS))}"
    lists = {}
    for key in ("required_fields", "optional_fields", "secret_fields"):
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors[key] = "must be a list of field names"
            value = []
        lists[key] = value
    maps = {}
    for key in ("field_types", "field_defaults", "validation_rules"):
        value = document.get(key, {})
        if not isinstance(value, dict):
            errors[key] = "must be an object keyed by field name"
            value = {}
        maps[key] = value
    names = list(
        dict.fromkeys(
            lists["required_fields"] + lists["optional_fields"] + list(maps["field_types"])
        )
    )
    properties = {}
    for name in names:
        properties[name] = _seed_field(name, maps, lists["secret_fields"], errors)
    for key in ("field_defaults", "validation_rules"):
        for name in maps[key].keys() - set(names):
            errors[f"{key}.{name}"] = "not a declared field"
    for name in set(lists["secret_fields"]) - set(names):
        errors[f"secret_fields.{name}"] = "not a declared field"
    if errors:
        raise InvalidInput("the schema is not a valid ServiceConfigSchema", fields=errors)
    schema = {"type": "object", "properties": properties, "required": lists["required_fields"]}
    if document.get("description"):
        schema["description"] = document["description"]
    return schema


def _seed_field(name: str, maps: dict, secret: list[str], errors: dict) -> dict:
    field: dict = {}
    type_name = maps["field_types"].get(name)
    json_type = None
    if type_name is not None:
        json_type = SEED_TYPES.get(type_name) if isinstance(type_name, str) else None
        if json_type is None:
            errors[f"field_types.{name}"] = (
                f"unknown type {type_name!r}; use one of {', '.join(SEED_TYPES)}"
            )
        else:
            field["type"] = json_type
    if name in maps["field_defaults"]:
        field["default"] = maps["field_defaults"][name]
    rules = maps["validation_rules"].get(name, {})
    if not isinstance(rules, dict):
        errors[f"validation_rules.{name}"] = "must be an object (min, max, choices, pattern)"
        rules = {}
    for rule, value in rules.items():
        where = f"validation_rules.{name}.{rule}"
        if rule in ("min", "max"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                errors[where] = "must be a number"
                continue
            keyword = _RULE_KEYWORDS.get(json_type, _NUMBER_RULES)[rule]
            field[keyword] = value
        elif rule == "choices":
            if not isinstance(value, list) or not value:
                errors[where] = "must be a non-empty list"
            else:
                field["enum"] = value
        elif rule == "pattern" and isinstance(value, str):
            field["pattern"] = value
        else:
            errors[where] = "unknown rule; use min, max, choices or pattern"
    if name in secret:
        field["writeOnly"] = True
    return field


def normalise(document: dict) -> tuple[dict, str]:
    """A checked JSON Schema for a document in either form, and which form it was."""
    if not isinstance(document, dict):
        raise InvalidInput("a schema is a JSON object", fields={"schema": "not an object"})
    if is_seed_form(document):
        schema, form = from_seed_form(document), "seed"
    else:
        schema, form = copy.deepcopy(document), "jsonschema"
    root_type = schema.setdefault("type", "object")
    if root_type != "object":
        raise InvalidInput(
            "a configuration schema describes an object",
            fields={"type": f"must be 'object', not {root_type!r}"},
        )
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = field_path(list(exc.absolute_path)) if exc.absolute_path else "schema"
        raise InvalidInput(
            "the schema is not valid JSON Schema (draft 2020-12)", fields={where: exc.message}
        ) from None
    _check_references(schema)
    return schema, form


def _check_references(schema: dict) -> None:
    """Resolve every $ref now, so a dangling one is refused here rather than failing every
    validation later. Nothing is fetched: a reference outside the document is refused."""
    resolver = Registry().with_resource(_ROOT, DRAFT202012.create_resource(schema)).resolver(_ROOT)
    for ref in _references(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise InvalidInput(
                "the schema has a reference that cannot be resolved",
                fields={"$ref": f"{ref!r} does not resolve within the schema"},
            ) from None


def _references(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def secret_paths(schema: dict, prefix: tuple = ()) -> list[list[str]]:
    """Paths of writeOnly leaves; "*" stands for every item of an array."""
    found: list[list[str]] = []
    if not isinstance(schema, dict):
        return found
    if schema.get("writeOnly") is True:
        return [list(prefix)]
    for name, sub in (schema.get("properties") or {}).items():
        found += secret_paths(sub, (*prefix, name))
    items = schema.get("items")
    if isinstance(items, dict):
        found += secret_paths(items, (*prefix, "*"))
    return found


def defaults_of(schema: dict):
    """The document the schema's defaults make up (nested objects included)."""
    if not isinstance(schema, dict):
        return None
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if schema.get("type") == "object" or "properties" in schema:
        result = {}
        for name, sub in (schema.get("properties") or {}).items():
            value = defaults_of(sub)
            if value is not None:
                result[name] = value
        return result
    return None


def merge_defaults(schema: dict, values):
    """``values`` with the schema's defaults filled in where a key is absent."""
    if not isinstance(values, dict) or not isinstance(schema, dict):
        return values
    merged = dict(values)
    for name, sub in (schema.get("properties") or {}).items():
        if name in merged:
            merged[name] = merge_defaults(sub, merged[name])
        else:
            default = defaults_of(sub)
            if default is not None and default != {}:
                merged[name] = default
    return merged


def closed(schema: dict) -> dict:
    """The schema with unknown keys refused in every object that lists its properties
    (strict and lenient validation report unknown fields; JSON Schema allows them)."""
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            result[key] = {k: closed(v) for k, v in value.items()}
        elif key in (
            "items",
            "additionalProperties",
            "not",
            "if",
            "then",
            "else",
            "contains",
            "propertyNames",
            "unevaluatedProperties",
        ):
            result[key] = closed(value)
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            result[key] = [closed(v) for v in value]
        else:
            result[key] = value
    combines = any(k in schema for k in ("allOf", "anyOf", "oneOf", "$ref"))
    if "properties" in result and "additionalProperties" not in result and not combines:
        result["additionalProperties"] = False
    return result


@lru_cache(maxsize=256)
def _validator(schema_id: int, schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(closed(json.loads(schema_json)))


def validator_for(schema_row) -> Draft202012Validator:
    """A compiled validator, cached per stored schema version (rows are immutable; the
    content is part of the key so a reused primary key cannot return a stale one)."""
    return _validator(schema_row.pk, json.dumps(schema_row.schema, sort_keys=True))

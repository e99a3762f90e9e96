"""A schema cannot stall a worker, break a service's configuration API, or publish a secret.

Through the API as a pipeline uses it: the schema is stored with ``config:write``, then
anyone with ``config:read`` makes the portal validate documents against it.
"""

import threading

import pytest
from django.db import connection

from services import config_schema, config_validation, configs
from services.models import ConfigSchema, ConfigVersion
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory

pytestmark = pytest.mark.django_db
URL = "/api/services/svc/config"


@pytest.fixture
def owner(make_token):
    ServiceFactory(name="svc")
    return ApiClient(make_token(["config:read", "config:write", "config:secrets"]).secret)


@pytest.fixture
def reader(make_token):
    return ApiClient(make_token(["config:read"]).secret)


def finishes(call, seconds: float = 20):
    """Run ``call`` in a thread; its result, or a failure if it is still running after
    ``seconds`` (the evaluation it would be stuck in cannot be interrupted, so the thread is
    a daemon and left behind). The thread has its own database connection: tests using it
    commit their data (``transaction=True``)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s"
    return outcome["value"]


# --- Regular expressions ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_catastrophic_pattern_is_evaluated_in_linear_time(owner, reader):
    schema = {"properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}
    assert owner.call("PUT", f"{URL}/schema", schema).status_code == 201
    # Backtracking needs 2**n steps for this value: n = 25 took a second, 60 is centuries.
    value = {"values": {"name": "a" * 60 + "!"}}
    res = finishes(lambda: reader.call("POST", f"{URL}/validate", value))
    assert res.status_code == 422  # the strict level: the answer storing it would get
    assert "does not match" in res.json()["error"]["fields"]["values.name"]
    ok = reader.call("POST", f"{URL}/validate", {"values": {"name": "aaaa"}})
    assert ok.json()["valid"] is True


@pytest.mark.django_db(transaction=True)
def test_catastrophic_pattern_properties_are_linear_too(owner, reader):
    schema = {"patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False}
    assert owner.call("PUT", f"{URL}/schema", schema).status_code == 201
    key = "a" * 60 + "!"
    res = finishes(lambda: reader.call("POST", f"{URL}/validate", {"values": {key: 1}}))
    assert res.status_code == 422
    assert res.json()["error"]["fields"] == {f"values.{key}": "unknown field"}
    res = reader.call("POST", f"{URL}/validate", {"values": {"aaa": 1}})
    assert res.json()["valid"] is True


@pytest.mark.parametrize(
    ("pattern", "where"),
    [
        (r"^(a)\1$", "properties.name.pattern"),  # a backreference
        (r"^(?=a)", "properties.name.pattern"),  # lookahead
    ],
)
def test_a_pattern_that_needs_backtracking_is_refused_when_stored(owner, pattern, where):
    schema = {"properties": {"name": {"type": "string", "pattern": pattern}}}
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    assert "linear time" in res.json()["error"]["fields"][where]
    assert not ConfigSchema.objects.exists()


def test_a_seed_form_pattern_is_checked_the_same_way(owner):
    schema = {**SEED_SCHEMA, "validation_rules": {"log_level": {"pattern": r"(x)\1"}}}
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    assert "properties.log_level.pattern" in res.json()["error"]["fields"]


# --- Schemas that cannot be evaluated --------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "$ref": "#"}, "$ref"),
        ({"properties": {"a": {"$ref": "#/properties/a"}}}, "properties.a.$ref"),
        (
            {
                "$defs": {"x": {"allOf": [{"$ref": "#/$defs/y"}]}, "y": {"anyOf": [{"$ref": "#"}]}},
                "allOf": [{"$ref": "#/$defs/x"}],
            },
            "$defs.y.anyOf[0].$ref",
        ),
    ],
)
def test_a_schema_that_refers_to_itself_without_end_is_refused_and_not_stored(
    owner, reader, schema, where
):
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    error = res.json()["error"]
    assert "refers to itself without end" in error["message"]
    assert "never steps into the document" in error["fields"][where]
    assert not ConfigSchema.objects.exists()
    # The service's configuration API keeps working.
    assert owner.call("POST", URL, {"values": {"a": 1}, "base_version": 0}).status_code == 201
    assert reader.call("GET", URL).status_code == 200


def test_a_recursive_schema_that_steps_into_the_document_is_fine(owner, reader):
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
    }
    assert owner.call("PUT", f"{URL}/schema", tree).status_code == 201
    document = {"name": "a", "children": [{"name": "b", "children": [{"name": 3}]}]}
    res = reader.call("POST", f"{URL}/validate", {"values": document})
    assert res.json()["error"]["fields"] == {
        "values.children[0].children[0].name": "3 is not of type 'string'"
    }


def fan_out(levels: int) -> dict:
    """Each level is anyOf two references to the next: 2**levels evaluations for one value."""
    defs = {f"l{i}": {"anyOf": [{"$ref": f"#/$defs/l{i + 1}"}] * 2} for i in range(levels)}
    defs[f"l{levels}"] = {"type": "string"}
    return {"$defs": defs, "properties": {"x": {"$ref": "#/$defs/l0"}}}


@pytest.mark.django_db(transaction=True)
def test_a_schema_too_costly_to_evaluate_is_refused_when_stored(owner, settings):
    settings.CONFIG_VALIDATION_SECONDS = 0.3
    schema = fan_out(40)
    schema["properties"]["x"]["default"] = 1  # the schema's own defaults are tried
    res = finishes(lambda: owner.call("PUT", f"{URL}/schema", schema))
    assert res.status_code == 422
    assert "bounded time" in res.json()["error"]["message"]
    assert not ConfigSchema.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_costly_validation_stops_at_its_budget_with_a_422(owner, reader, settings):
    settings.CONFIG_VALIDATION_SECONDS = 0.3
    assert owner.call("PUT", f"{URL}/schema", fan_out(40)).status_code == 201
    res = finishes(lambda: reader.call("POST", f"{URL}/validate", {"values": {"x": 1}}))
    assert res.status_code == 422
    assert res.json()["error"]["code"] == "schema_too_costly"


def reference_chain(hops: int, step=lambda ref: ref) -> dict:
    """A property that reaches its type through ``hops`` definitions, each referring to the
    next (``step`` wraps each reference: in `not`/`not`, say)."""
    defs = {f"d{i}": step({"$ref": f"#/$defs/d{i + 1}"}) for i in range(hops)}
    defs[f"d{hops}"] = {"type": "string"}
    return {"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}}


def test_a_schema_nested_past_what_validation_follows_is_refused_when_saved(owner, reader):
    """Issue 28: a chain of 500 references was accepted (its defaults and an empty document
    never reach it), then every validation of a value for `x` was `schema_too_costly`. Now
    it is refused at save, naming where the chain passes the limit and why."""
    schema = reference_chain(500)
    validator = config_validation.PortalValidator(config_schema.closed(schema))
    with pytest.raises(config_validation.ValidationTooCostly):  # what storing it meant
        config_validation.errors(validator, {"x": "a"})
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    error = res.json()["error"]
    assert error["code"] == "invalid"
    assert "nests too deeply" in error["message"]
    limit = config_schema.MAX_NESTING
    # The root, properties.x, then the definitions: the one past the limit is named.
    reason = error["fields"][f"$defs.d{limit - 2}"]
    assert "nested 503 deep along # -> properties.x -> $defs.d0 -> ..." in reason
    assert f"at most {limit}" in reason and "schema_too_costly" in reason
    assert not ConfigSchema.objects.exists()
    assert reader.call("POST", f"{URL}/validate", {"values": {"x": "a"}}).status_code == 200


def test_a_schema_at_the_nesting_limit_validates_through_the_api(owner, reader):
    """What the limit lets through validates: the most nesting allowed, of the kind that costs
    the validator the most stack (`not` inside `not`), through a whole request."""
    hops = (config_schema.MAX_NESTING - 3) // 3  # the root, properties.x, the last type
    schema = reference_chain(hops, step=lambda ref: {"not": {"not": ref}})
    assert owner.call("PUT", f"{URL}/schema", schema).status_code == 201
    assert (
        owner.call(
            "PUT",
            f"{URL}/schema",
            reference_chain(hops + 1, step=lambda ref: {"not": {"not": ref}}),
        ).status_code
        == 422
    )
    ok = reader.call("POST", f"{URL}/validate", {"values": {"x": "a"}})
    assert ok.status_code == 200 and ok.json()["valid"] is True
    bad = reader.call("POST", f"{URL}/validate", {"values": {"x": 1}})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid"
    assert set(bad.json()["error"]["fields"]) == {"values.x"}


@pytest.mark.django_db(transaction=True)
def test_unique_items_over_objects_is_one_pass(owner, reader):
    schema = {"properties": {"xs": {"type": "array", "uniqueItems": True}}}
    assert owner.call("PUT", f"{URL}/schema", schema).status_code == 201
    # Pair by pair this is 100 million comparisons; by canonical form, one pass.
    many = [{"i": i} for i in range(15_000)]
    res = finishes(lambda: reader.call("POST", f"{URL}/validate", {"values": {"xs": many}}))
    assert res.json()["valid"] is True
    same = [{"a": 1, "b": [1.0]}, {"b": [1], "a": 1}]
    res = reader.call("POST", f"{URL}/validate", {"values": {"xs": same}})
    assert "non-unique elements" in res.json()["error"]["fields"]["values.xs"]
    distinct = [True, 1, "1", None, 0, False]
    res = reader.call("POST", f"{URL}/validate", {"values": {"xs": distinct}})
    assert res.json()["valid"] is True


# --- Secrets carry no value in the schema ---------------------------------------------------


def test_a_seed_form_default_for_a_secret_is_refused(owner):
    schema = {
        "required_fields": ["db_password"],
        "field_types": {"db_password": "str"},
        "field_defaults": {"db_password": "hunter2-default"},
        "secret_fields": ["db_password"],
    }
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    assert "cannot carry a value" in res.json()["error"]["fields"]["field_defaults.db_password"]
    assert not ConfigSchema.objects.exists()


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (
            {"properties": {"pw": {"type": "string", "writeOnly": True, "default": "x"}}},
            "pw.default",
        ),
        ({"properties": {"pw": {"writeOnly": True, "enum": ["a", "b"]}}}, "pw.enum"),
        ({"properties": {"pw": {"writeOnly": True, "examples": ["a"]}}}, "pw.examples"),
        (
            {
                "properties": {
                    "db": {
                        "default": {"password": "in-the-parent"},
                        "properties": {"password": {"writeOnly": True}},
                    }
                }
            },
            "db.default",
        ),
    ],
)
def test_a_secret_with_a_value_in_the_schema_is_refused(owner, schema, where):
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    fields = res.json()["error"]["fields"]
    assert f"properties.{where}" in fields, fields


def test_a_secret_behind_a_reference_is_found_and_encrypted(owner, reader):
    schema = {
        "$defs": {"secret": {"type": "string", "writeOnly": True}},
        "properties": {"db": {"allOf": [{"properties": {"password": {"$ref": "#/$defs/secret"}}}]}},
    }
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 201
    assert res.json()["secret_paths"] == [["db", "password"]]
    owner.call("POST", URL, {"values": {"db": {"password": "behind-a-ref"}}, "base_version": 0})
    assert "behind-a-ref" not in str(ConfigVersion.objects.get().values)
    assert reader.call("GET", URL).json()["values"] == {"db": {"password": configs.MASK}}


@pytest.mark.parametrize(
    "schema",
    [
        {"patternProperties": {"^pw_": {"writeOnly": True}}},
        {"additionalProperties": {"type": "string", "writeOnly": True}},
        {
            "properties": {
                "node": {
                    "properties": {"pw": {"writeOnly": True}, "next": {"$ref": "#/properties/node"}}
                }
            }
        },
    ],
)
def test_a_secret_the_portal_could_not_find_is_refused(owner, schema):
    res = owner.call("PUT", f"{URL}/schema", schema)
    assert res.status_code == 422
    assert "could not encrypt" in res.json()["error"]["message"]


def test_secret_paths_are_the_same_for_the_plain_forms():
    schema, _ = config_schema.normalise(
        {
            **SEED_SCHEMA,
            "field_types": {**SEED_SCHEMA["field_types"], "pw": "str"},
            "optional_fields": [*SEED_SCHEMA["optional_fields"], "pw"],
            "secret_fields": ["pw"],
        }
    )
    assert config_schema.secret_paths(schema) == [["pw"]]

"""What docs/decisions.md says a stored schema may not be, through the API as a pipeline stores
one: a dynamic reference (the checks cannot follow it), ``unevaluatedProperties`` beside
``patternProperties`` (evaluated with Python's backtracking engine), a secret under
``contains`` (the portal could not find and encrypt it), a secret with a ``const`` (a value in
a document readable with config:read). Each is a 422 naming where, and nothing is stored."""

import pytest

from services.models import ConfigSchema
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db
URL = "/api/services/svc/config/schema"


@pytest.fixture
def owner(make_token):
    ServiceFactory(name="svc")
    return ApiClient(make_token(["config:read", "config:write"]).secret)


def refused(owner, schema: dict) -> dict:
    answer = owner.call("PUT", URL, schema)
    assert answer.status_code == 422, answer.content
    assert not ConfigSchema.objects.exists()
    return answer.json()["error"]


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (
            {"$dynamicAnchor": "node", "properties": {"next": {"$dynamicRef": "#node"}}},
            "$dynamicAnchor",
        ),
        ({"properties": {"next": {"$dynamicRef": "#"}}}, "properties.next.$dynamicRef"),
        ({"properties": {"next": {"$recursiveRef": "#"}}}, "properties.next.$recursiveRef"),
    ],
)
def test_a_reference_the_checks_cannot_follow_is_refused(owner, schema, where):
    error = refused(owner, schema)
    assert "dynamic references are not supported" in error["fields"][where]


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (
            {"patternProperties": {"^x_": {"type": "integer"}}, "unevaluatedProperties": False},
            "unevaluatedProperties",
        ),
        (
            {
                "properties": {
                    "inner": {
                        "patternProperties": {"^a": {"type": "string"}},
                        "unevaluatedProperties": False,
                    }
                }
            },
            "properties.inner.unevaluatedProperties",
        ),
    ],
)
def test_unevaluated_properties_beside_pattern_properties_is_refused(owner, schema, where):
    error = refused(owner, schema)
    assert "not supported together with patternProperties" in error["fields"][where]


def test_unevaluated_properties_alone_is_stored(owner):
    schema = {"properties": {"a": {"type": "integer"}}, "unevaluatedProperties": False}
    assert owner.call("PUT", URL, schema).status_code == 201


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        (
            {"properties": {"xs": {"type": "array", "contains": {"writeOnly": True}}}},
            "could not encrypt",
        ),
        ({"properties": {"pw": {"writeOnly": True, "const": "hunter2"}}}, "cannot carry a value"),
    ],
)
def test_a_secret_under_contains_or_with_a_const_is_refused(owner, schema, says):
    error = refused(owner, schema)
    assert says in error["message"] + " ".join(error.get("fields", {}).values())
    assert "hunter2" not in str(error)

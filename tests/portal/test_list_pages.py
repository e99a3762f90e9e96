"""Every list the API pages answers one shape, ``{items, count, limit, offset}``, and honours
``limit`` and ``offset``: a property over every such operation of the OpenAPI document (those
with both parameters) and every limit and offset up to the document's maximum."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automation.models import Alert, Delivery
from healthchecks.status import Status
from portal import audit
from portal.api import api
from portal.auth import system_actor
from portal.models import Scope, SecurityEvent
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db

DOCUMENT = api.get_openapi_schema()
ROWS = 7  # of each kind: pages of 1 to 7, and offsets past the end


def paged_lists() -> dict[str, int]:
    """path -> the largest limit the document allows, for each GET taking limit and offset."""
    found = {}
    for path, methods in DOCUMENT["paths"].items():
        parameters = {p["name"]: p for p in methods.get("get", {}).get("parameters", [])}
        if {"limit", "offset"} <= set(parameters):
            found[path] = parameters["limit"]["schema"]["maximum"]
    return found


PAGED = paged_lists()


def test_the_paged_lists_are_the_collections_that_grow():
    assert set(PAGED) == {
        "/api/services",
        "/api/teams",
        "/api/alerts",
        "/api/automation/deliveries",
        "/api/security-events",
        "/api/audit",
    }
    for path in PAGED:
        schema = DOCUMENT["paths"][path]["get"]["responses"][200]["content"]["application/json"]
        ref = schema["schema"]["$ref"].rsplit("/", 1)[1]
        page = DOCUMENT["components"]["schemas"][ref]
        assert set(page["required"]) == {"items", "count", "limit", "offset"}, path


@pytest.fixture
def estate(make_token):
    """ROWS teams, services (each with an open alert, a delivery and an audit entry) and
    security events."""
    for i in range(ROWS):
        service = ServiceFactory(name=f"svc-{i}", team=TeamFactory(name=f"team-{i}"))
        Alert.objects.create(service=service, status=Status.UNHEALTHY)
        Delivery.objects.create(service=service, channel_name="ops", event="down")
        audit.record(system_actor("tests"), "service.update", "service", service.name)
        SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.LOGIN_FAILED,
            who=f"user-{i}",
            operation="POST /accounts/login/",
            outcome="refused",
        )
    client = ApiClient(make_token(list(Scope.values), name="reader").secret)
    whole = {}
    for path, maximum in PAGED.items():
        answer = client.call("GET", f"{path}?limit={maximum}")
        assert answer.status_code == 200, (path, answer.content[:300])
        whole[path] = answer.json()["items"]
        assert len(whole[path]) >= ROWS, path
    return client, whole


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_list_answers_one_shape_with_its_limit_and_offset_honoured(estate, data):
    client, whole = estate
    path = data.draw(st.sampled_from(sorted(PAGED)), label="path")
    limit = data.draw(st.integers(1, PAGED[path]), label="limit")
    offset = data.draw(st.integers(0, len(whole[path]) + 2), label="offset")
    answer = client.call("GET", f"{path}?limit={limit}&offset={offset}")
    assert answer.status_code == 200, answer.content[:300]
    page = answer.json()
    assert set(page) == {"items", "count", "limit", "offset"}
    assert (page["count"], page["limit"], page["offset"]) == (len(whole[path]), limit, offset)
    assert page["items"] == whole[path][offset : offset + limit]


@pytest.mark.parametrize("path", sorted(PAGED))
def test_a_limit_past_the_documented_maximum_is_refused(estate, path):
    client, _ = estate
    answer = client.call("GET", f"{path}?limit={PAGED[path] + 1}")
    assert answer.status_code == 422
    assert "limit" in answer.json()["error"]["fields"]

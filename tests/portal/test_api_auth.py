"""Who may call the API: bearer tokens, browser sessions, scopes and service limits."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from portal.models import ApiToken
from services.models import Service
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db


def test_no_token_is_401_with_the_error_shape(anonymous):
    res = anonymous.call("GET", "/api/services")
    assert res.status_code == 401
    assert res["WWW-Authenticate"] == "Bearer"
    error = res.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["request_id"] == res["X-Request-ID"]


def test_a_bad_token_is_401():
    for header in ("Bearer svp_nope", "Bearer ", "Basic dXNlcjpwdw==", "svp_x"):
        res = ApiClient().call("GET", "/api/services", headers={"Authorization": header})
        assert res.status_code == 401, header


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwdw==", "Token svp_abc", "Bearer "])
def test_a_write_without_credentials_is_401_not_a_csrf_failure(manifest, header):
    """A pipeline that forgot its token must be told to authenticate, not to reload a page:
    CSRF is checked only for requests that carry a session."""
    client = Client(enforce_csrf_checks=True)
    headers = {"Authorization": header} if header else {}
    res = client.post(
        "/api/registry/apply", manifest, content_type="application/json", headers=headers
    )
    assert res.status_code == 401
    assert res["WWW-Authenticate"] == "Bearer"
    assert res.json()["error"]["code"] == "unauthorized"
    assert not Service.objects.exists()


def test_an_expired_token_is_401_and_says_so(make_token):
    issued = make_token(["registry:read"], name="old", expires_in=timedelta(days=1))
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        res = ApiClient(issued.secret).call("GET", "/api/services")
    assert res.status_code == 401
    assert "expired" in res.json()["error"]["message"]


def test_a_write_with_a_read_only_token_is_403(reader, manifest):
    res = reader.call("POST", "/api/registry/apply", manifest)
    assert res.status_code == 403
    assert res.json()["error"]["required_scope"] == "registry:write"
    assert reader.call("GET", "/api/services").status_code == 200


def test_a_token_limited_to_services_sees_and_changes_only_those(make_token):
    TeamFactory(name="core")
    ServiceFactory(name="mine"), ServiceFactory(name="theirs")
    client = ApiClient(make_token(["registry:read", "registry:write"], services=["mine"]).secret)
    assert [s["name"] for s in client.call("GET", "/api/services").json()["items"]] == ["mine"]
    # Outside its reach a service answers as if it did not exist: nothing leaks.
    hidden = client.call("GET", "/api/services/theirs")
    assert hidden.status_code == 404
    assert hidden.json()["error"] == {
        **hidden.json()["error"],
        "message": "no service named 'theirs'",
    }
    assert client.call("GET", "/api/services/nothing-here").json()["error"]["message"] == (
        "no service named 'nothing-here'"
    )
    assert client.call("PATCH", "/api/services/theirs", {"description": "x"}).status_code == 404
    assert client.call("PATCH", "/api/services/mine", {"description": "x"}).status_code == 200
    res = client.call(
        "POST", "/api/registry/apply", {"services": [{"name": "mine"}, {"name": "theirs"}]}
    )
    assert res.status_code == 403
    assert res.json()["error"]["services"] == ["theirs"]


def test_a_token_limited_to_a_service_cannot_change_shared_teams(make_token):
    core = TeamFactory(name="core", display_name="Core")
    ServiceFactory(name="mine", team=core), ServiceFactory(name="theirs", team=core)
    client = ApiClient(make_token(["registry:read", "registry:write"], services=["mine"]).secret)
    res = client.call("PUT", "/api/teams/core", {"display_name": "Taken over"})
    assert res.status_code == 403 and res.json()["error"]["teams"] == ["core"]
    manifest = {"teams": [{"name": "core", "contact": "#mine"}], "services": [{"name": "mine"}]}
    assert client.call("POST", "/api/registry/apply", manifest).status_code == 403
    new_team = {"teams": [{"name": "mine-team"}], "services": [{"name": "mine"}]}
    assert client.call("POST", "/api/registry/apply", new_team).status_code == 403
    core.refresh_from_db()
    assert (core.display_name, core.contact) == ("Core", "")
    # Its own service may still move to an existing team: that changes only its service.
    TeamFactory(name="other")
    res = client.call("PATCH", "/api/services/mine", {"team": "other"})
    assert res.status_code == 200


def test_a_token_limited_to_a_service_cannot_touch_edges_outside_its_reach(make_token):
    TeamFactory(name="core")
    mine, theirs = ServiceFactory(name="mine"), ServiceFactory(name="theirs")
    ServiceFactory(name="also-mine")
    limited = make_token(["registry:read", "registry:write"], services=["mine", "also-mine"])
    client = ApiClient(limited.secret)
    res = client.call("PUT", "/api/services/mine/dependencies/theirs", {"kind": "hard"})
    assert res.status_code == 403 and res.json()["error"]["services"] == ["theirs"]
    res = client.call("PATCH", "/api/services/mine", {"dependencies": ["theirs"]})
    assert res.status_code == 403
    manifest = {"services": [{"name": "mine", "dependencies": ["theirs"]}]}
    assert client.call("POST", "/api/registry/apply", manifest).status_code == 403
    assert not mine.dependency_links.exists()
    # Edges between its own services are its own business.
    res = client.call("PUT", "/api/services/mine/dependencies/also-mine", {"kind": "soft"})
    assert res.status_code == 200
    # An edge to the outside set up by someone else stays; re-applying it unchanged is fine,
    # removing it is not.
    from services.models import Dependency

    Dependency.objects.create(service=mine, depends_on=theirs)
    same = {
        "services": [
            {"name": "mine", "dependencies": ["theirs", {"service": "also-mine", "kind": "soft"}]}
        ]
    }
    assert client.call("POST", "/api/registry/apply", same).status_code == 200
    res = client.call("DELETE", "/api/services/mine/dependencies/theirs")
    assert res.status_code == 403
    assert Dependency.objects.filter(service=mine, depends_on=theirs).exists()


def test_using_a_token_records_when(make_token):
    issued = make_token(["registry:read"])
    ApiClient(issued.secret).call("GET", "/api/services")
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is not None


def test_a_logged_in_viewer_may_read_but_not_write(bob, manifest):
    client = Client()
    client.force_login(bob)
    assert client.get("/api/services").status_code == 200
    res = client.post("/api/registry/apply", manifest, content_type="application/json")
    assert res.status_code == 403


def test_a_logged_in_operator_writes_with_a_csrf_token(alice, manifest):
    TeamFactory(name="core").members.add(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = client.post("/api/registry/apply", manifest, content_type="application/json")
    assert refused.status_code == 403
    client.get("/accounts/login/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    res = client.post(
        "/api/registry/apply",
        manifest,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert res.status_code == 200
    assert Service.objects.count() == 3
    assert Service.objects.get(name="auth").transitions.get().actor == "user:alice"

"""The registry API through Django's full request stack (middleware, auth, errors)."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from services.models import Service, Team
from tests.factories import DependencyFactory, ServiceFactory, TeamFactory

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_it_lists_services_with_filters_and_pages(api):
    core, edge = TeamFactory(name="core"), TeamFactory(name="edge")
    for i in range(5):
        ServiceFactory(name=f"core-{i}", team=core)
    ServiceFactory(name="edge-1", team=edge, is_critical=True, display_name="Edge proxy")
    res = api.call("GET", "/api/services?team=core&limit=2&offset=2")
    assert res.status_code == 200
    body = res.json()
    assert body["count"] == 5 and body["limit"] == 2 and body["offset"] == 2
    assert [s["name"] for s in body["items"]] == ["core-2", "core-3"]
    assert [s["name"] for s in api.call("GET", "/api/services?critical=true").json()["items"]] == [
        "edge-1"
    ]
    assert api.call("GET", "/api/services?q=proxy").json()["count"] == 1


def test_it_filters_by_tag_and_status(api, manifest):
    manifest["services"][1]["tags"] = ["public"]
    api.call("POST", "/api/registry/apply", manifest)
    api.call("POST", "/api/services/auth/transitions", {"to": "running"})
    assert [s["name"] for s in api.call("GET", "/api/services?tag=public").json()["items"]] == [
        "auth"
    ]
    assert api.call("GET", "/api/services?status=running").json()["count"] == 1
    assert api.call("GET", "/api/services?status=registered").json()["count"] == 2


def test_bad_filter_values_are_422_with_fields(api):
    res = api.call("GET", "/api/services?status=sleeping&limit=0")
    assert res.status_code == 422
    assert set(res.json()["error"]["fields"]) == {"status", "limit"}


def test_listing_costs_the_same_queries_for_any_page_size(api):
    team = TeamFactory(name="core")
    services = [ServiceFactory(name=f"s-{i:03}", team=team) for i in range(60)]
    for a, b in itertools.pairwise(services):
        DependencyFactory(service=a, depends_on=b)
    api.call("PUT", "/api/services/s-000", {"tags": ["x", "y"]})

    def queries(limit):
        with CaptureQueriesContext(connection) as ctx:
            assert api.call("GET", f"/api/services?limit={limit}").status_code == 200
        return len(ctx)

    assert queries(1) == queries(50)


def test_it_gets_one_service_with_its_dependencies(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    body = api.call("GET", "/api/services/payments").json()
    assert body["team"] == "core" and body["is_critical"] is True
    assert body["dependencies"] == [
        {"service": "auth", "kind": "hard"},
        {"service": "ledger-db", "kind": "soft"},
    ]
    assert body["lifecycle_status"] == "registered"
    assert api.call("GET", "/api/services/ghost").status_code == 404


def test_create_answers_201_then_409_for_the_same_name(api):
    TeamFactory(name="core")
    body = {"name": "web", "team": "core", "repository_url": "https://git.example/web"}
    res = api.call("POST", "/api/services", body)
    assert res.status_code == 201
    assert res.json()["links"]["repository"] == "https://git.example/web"
    again = api.call("POST", "/api/services", body)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exists"


def test_put_is_an_idempotent_upsert(api):
    TeamFactory(name="core")
    body = {"team": "core", "description": "Web front", "tags": ["public"]}
    first = api.call("PUT", "/api/services/web", body)
    assert first.status_code == 201 and first.json()["result"] == "created"
    second = api.call("PUT", "/api/services/web", body)
    assert second.status_code == 200
    assert second.json()["result"] == "unchanged" and second.json()["changed_fields"] == []
    third = api.call("PUT", "/api/services/web", {**body, "is_critical": True})
    assert third.json()["result"] == "updated" and third.json()["changed_fields"] == ["is_critical"]


def test_patch_changes_given_fields_only(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    res = api.call("PATCH", "/api/services/payments", {"deployed_version": "1.2.3"})
    assert res.status_code == 200
    assert res.json()["service"]["deployed_version"] == "1.2.3"
    assert res.json()["service"]["is_critical"] is True
    assert api.call("PATCH", "/api/services/ghost", {"description": "x"}).status_code == 404


def test_an_slo_target_is_kept_changed_and_bounded(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    res = api.call("PATCH", "/api/services/auth", {"slo_target": 99.95})
    assert res.status_code == 200, res.json()
    assert api.call("GET", "/api/services/auth").json()["slo_target"] == 99.95
    api.call("PATCH", "/api/services/auth", {"description": "kept"})
    assert Service.objects.get(name="auth").slo_target == 99.95  # left out: kept
    for bad in (100, 12, "high"):
        res = api.call("PATCH", "/api/services/auth", {"slo_target": bad})
        assert res.status_code == 422 and "slo_target" in res.json()["error"]["fields"], bad
    assert Service.objects.get(name="auth").slo_target == 99.95
    res = api.call("PATCH", "/api/services/auth", {"slo_target": None})
    assert res.json()["service"]["slo_target"] is None


def test_delete_lists_dependents_then_succeeds(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    res = api.call("DELETE", "/api/services/auth")
    assert res.status_code == 409
    assert res.json()["error"]["dependents"] == [{"service": "payments", "kind": "hard"}]
    assert api.call("DELETE", "/api/services/payments").status_code == 204
    assert api.call("DELETE", "/api/services/auth").status_code == 204
    assert not Service.objects.filter(name__in=["auth", "payments"]).exists()


def test_dependencies_dependents_and_impact(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    assert api.call("GET", "/api/services/auth/dependents").json() == [
        {"service": "payments", "kind": "hard"}
    ]
    assert (
        api.call("PUT", "/api/services/auth/dependencies/ledger-db", {"kind": "soft"}).status_code
        == 200
    )
    assert api.call("GET", "/api/services/auth/dependencies").json() == [
        {"service": "ledger-db", "kind": "soft"}
    ]
    impact = api.call("GET", "/api/services/ledger-db/impact").json()
    assert impact == [
        {"service": "auth", "depth": 1, "via": "ledger-db", "effect": "degraded"},
        {"service": "payments", "depth": 1, "via": "ledger-db", "effect": "degraded"},
    ]
    assert api.call("DELETE", "/api/services/auth/dependencies/ledger-db").json() == []


def test_adding_a_dependency_that_closes_a_cycle_is_422(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    res = api.call("PUT", "/api/services/auth/dependencies/payments", {})
    assert res.status_code == 422
    assert res.json()["error"]["cycle"] == ["auth", "payments", "auth"]


def test_transitions_are_enforced_and_listed(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    ok = api.call("POST", "/api/services/auth/transitions", {"to": "starting", "reason": "deploy"})
    assert ok.status_code == 200
    assert ok.json() == {
        "service": "auth",
        "lifecycle_status": "starting",
        "changed": True,
        "allowed_next": ["running", "degraded", "failed", "stopping"],
    }
    bad = api.call("POST", "/api/services/auth/transitions", {"to": "stopped"})
    assert bad.status_code == 409
    assert bad.json()["error"]["allowed"] == ["running", "degraded", "failed", "stopping"]
    history = api.call("GET", "/api/services/auth/transitions").json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("registered", "starting"),
        ("", "registered"),
    ]
    assert history[0]["reason"] == "deploy" and history[0]["actor"].startswith("token:")


def test_apply_answers_created_updated_unchanged(api, manifest):
    first = api.call("POST", "/api/registry/apply", manifest)
    assert first.status_code == 200
    assert first.json()["created"] == ["payments", "auth", "ledger-db"]
    second = api.call("POST", "/api/registry/apply", manifest).json()
    assert second["unchanged"] == ["payments", "auth", "ledger-db"]
    assert second["created"] == second["updated"] == []


def test_apply_leaves_out_fields_untouched(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    res = api.call(
        "POST",
        "/api/registry/apply",
        {"services": [{"name": "payments", "description": "Takes money"}]},
    )
    assert res.json()["updated"] == ["payments"]
    body = api.call("GET", "/api/services/payments").json()
    assert body["is_critical"] is True and len(body["dependencies"]) == 2


def test_apply_with_a_cycle_is_422_and_names_it(api, manifest):
    manifest["services"][2]["dependencies"] = ["payments"]
    res = api.call("POST", "/api/registry/apply", manifest)
    assert res.status_code == 422
    error = res.json()["error"]
    assert error["code"] == "dependency_cycle"
    assert error["message"] == "dependency cycle: ledger-db -> payments -> ledger-db"
    assert not Service.objects.exists()


def test_apply_with_wrong_types_names_each_field(api, manifest):
    manifest["services"][0]["is_critical"] = "yes"
    manifest["services"][1]["name"] = "Not A Slug"
    manifest["services"][2]["dependancies"] = []
    res = api.call("POST", "/api/registry/apply", manifest)
    assert res.status_code == 422
    fields = res.json()["error"]["fields"]
    assert set(fields) == {
        "services[0].is_critical",
        "services[1].name",
        "services[2].dependancies",
    }
    assert "not a valid name" in fields["services[1].name"]
    assert not Service.objects.exists()


def test_startup_and_shutdown_order(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    order = api.call("GET", "/api/registry/startup-order").json()["order"]
    assert order == ["auth", "ledger-db", "payments"]
    assert api.call("GET", "/api/registry/shutdown-order").json()["order"] == [
        "payments",
        "ledger-db",
        "auth",
    ]
    assert api.call("GET", "/api/registry/startup-order?service=auth").json() == {"order": ["auth"]}
    assert api.call("GET", "/api/registry/startup-order?service=ghost").status_code == 422


def test_free_text_loses_terminal_escapes_on_the_way_in(api):
    """Issue 28: `\\x1b[31m` in a description was stored and printed as is by portalctl.
    Display names, contacts and descriptions lose escape sequences whole and every other
    control character (a name's line breaks become spaces; a description keeps its lines
    and tabs), through the API, a manifest and so the admin alike; sending the same again
    changes nothing."""
    hostile = "\x1b[31mRed\x1b[0m\x1b]0;owned\x07 \x9b2Jteam\x08"
    team = {"display_name": hostile + "\nx", "contact": hostile, "description": "a\r\nb\tc\x1b[2J"}
    assert api.call("PUT", "/api/teams/core", team).status_code == 201
    stored = Team.objects.get(name="core")
    assert (stored.display_name, stored.contact) == ("Red team x", "Red team")
    assert stored.description == "a\nb\tc"
    assert api.call("PUT", "/api/teams/core", team).status_code == 200
    service = {"team": "core", "display_name": hostile, "description": hostile + "\n"}
    assert api.call("PUT", "/api/services/web", service).status_code == 201
    assert api.call("PUT", "/api/services/web", service).json()["result"] == "unchanged"
    shown = api.call("GET", "/api/services/web").json()
    assert (shown["display_name"], shown["description"]) == ("Red team", "Red team\n")
    manifest = {"services": [{"name": "api", "team": "core", "description": hostile}]}
    assert api.call("POST", "/api/registry/apply", manifest).status_code == 200
    assert Service.objects.get(name="api").description == "Red team"


def test_shutdown_order_names_the_dependents_to_stop_first(api):
    """Issue 28: an operator about to stop x needs what depends on x, stopped first. The
    answer keeps `order` (x and what it needs) and adds `dependents`, in the order to stop
    them; stopping them in that order, then x, meets no 409 from the lifecycle."""
    services = {
        "db": [],
        "auth": ["db"],
        "ledger": ["db"],
        "payments": ["auth", {"service": "ledger", "kind": "soft"}],
        "reports": [{"service": "db", "kind": "soft"}],
        "web": ["payments"],
        "other": [],
    }
    manifest = {
        "teams": [{"name": "core"}],
        "services": [{"name": n, "team": "core", "dependencies": d} for n, d in services.items()],
    }
    assert api.call("POST", "/api/registry/apply", manifest).status_code == 200
    answer = api.call("GET", "/api/registry/shutdown-order?service=db").json()
    assert answer["order"] == ["db"]  # as before: db and what it needs
    assert answer["dependents"] == [
        {"service": "web", "kind": "hard"},
        {"service": "reports", "kind": "soft"},
        {"service": "payments", "kind": "hard"},
        {"service": "ledger", "kind": "hard"},
        {"service": "auth", "kind": "hard"},
    ]
    payments = api.call("GET", "/api/registry/shutdown-order?service=payments").json()
    assert payments == {
        "order": ["payments", "ledger", "auth", "db"],
        "dependents": [{"service": "web", "kind": "hard"}],
    }
    whole = api.call("GET", "/api/registry/shutdown-order").json()
    assert whole["dependents"] == [] and len(whole["order"]) == len(services)

    for name in api.call("GET", "/api/registry/startup-order").json()["order"]:
        res = api.call("POST", f"/api/services/{name}/transitions", {"to": "running"})
        assert res.status_code == 200, res.json()
    refused = api.call("POST", "/api/services/db/transitions", {"to": "stopping"})
    assert refused.status_code == 409
    blocking = {b["service"] for b in refused.json()["error"]["blocking"]}
    assert blocking <= {d["service"] for d in answer["dependents"] if d["kind"] == "hard"}
    for name in [*(d["service"] for d in answer["dependents"]), "db"]:
        res = api.call("POST", f"/api/services/{name}/transitions", {"to": "stopping"})
        assert res.status_code == 200, res.json()


def test_shutdown_order_of_an_unknown_service_is_422_naming_it(api):
    res = api.call("GET", "/api/registry/shutdown-order?service=ghost")
    assert res.status_code == 422
    assert res.json()["error"]["fields"] == {"service": "no service 'ghost'"}


def test_teams_are_listed_with_counts_and_upserted(api, manifest):
    api.call("POST", "/api/registry/apply", manifest)
    assert api.call("PUT", "/api/teams/edge", {"contact": "#edge"}).status_code == 201
    assert api.call("PUT", "/api/teams/edge", {"contact": "#edge"}).status_code == 200
    teams = {t["name"]: t for t in api.call("GET", "/api/teams").json()["items"]}
    assert teams["core"]["service_count"] == 3
    assert teams["edge"]["contact"] == "#edge"

"""Defining checks: the API, the registry manifest, and refusing bad definitions."""

import pytest

from healthchecks.models import CheckResult, CheckState, HealthCheck
from healthchecks.status import Status
from portal import encryption
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, make_check

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def ops(make_token):
    return ApiClient(make_token(["registry:read", "registry:write", "health:write"]).secret)


@pytest.fixture
def payments():
    return ServiceFactory(name="payments")


def test_put_creates_then_updates_a_check(ops, payments):
    body = {
        "kind": "http",
        "target": "https://payments.internal/health",
        "interval": 30,
        "timeout": 5,
        "retries": 2,
        "critical": True,
        "headers": {"X-Token": "sekrit"},
    }
    res = ops.call("PUT", "/api/services/payments/checks/http", body)
    assert res.status_code == 201
    check = res.json()
    assert check["interval"] == 30 and check["retries"] == 2 and check["has_secrets"]
    assert "sekrit" not in res.content.decode()
    row = HealthCheck.objects.get()
    assert "sekrit" not in row.secrets
    assert encryption.decrypt(row.secrets) == {"headers": {"X-Token": "sekrit"}}
    assert CheckState.objects.filter(health_check=row).exists()
    again = ops.call("PUT", "/api/services/payments/checks/http", {"kind": "http", "interval": 60})
    assert again.status_code == 200
    row.refresh_from_db()
    assert row.interval == 60 and row.retries == 2 and row.target.endswith("/health")
    assert encryption.decrypt(row.secrets)["headers"] == {"X-Token": "sekrit"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "http", "target": "ftp://x.internal/"}, "target"),
        ({"kind": "http", "target": "not a url"}, "target"),
        ({"kind": "http", "target": "http://169.254.169.254/latest"}, "target"),
        ({"kind": "http", "target": "http://x.internal/", "interval": 5, "timeout": 10}, "timeout"),
        ({"kind": "carrier-pigeon", "target": "x"}, "kind"),
        ({"kind": "python", "target": "os.system"}, "target"),
        ({"kind": "python", "target": "healthchecks.watch.builtin.no_such_thing"}, "target"),
        ({"kind": "postgres", "target": "postgresql://u:pw@db.internal/app"}, "target"),
        ({"kind": "tcp", "target": "db.internal"}, "target"),
        (
            {"kind": "http", "target": "http://x.internal/", "expected_status": [700]},
            "expected_status",
        ),
        ({"kind": "http", "target": "http://x.internal/", "interval": 0}, "interval"),
    ],
)
def test_bad_definitions_are_refused_with_the_field(ops, payments, body, field):
    res = ops.call("PUT", "/api/services/payments/checks/c", body)
    assert res.status_code == 422, res.content
    assert field in res.json()["error"]["fields"], res.json()
    assert not HealthCheck.objects.exists()


def test_checks_need_the_health_write_scope(make_token, payments):
    reader = ApiClient(make_token(["registry:read", "registry:write"]).secret)
    res = reader.call(
        "PUT", "/api/services/payments/checks/c", {"kind": "tcp", "target": "127.0.0.1:5432"}
    )
    assert res.status_code == 403


def test_the_manifest_carries_checks(ops):
    manifest = {
        "teams": [{"name": "core"}],
        "services": [
            {
                "name": "payments",
                "team": "core",
                "checks": [
                    {
                        "name": "http",
                        "kind": "http",
                        "target": "https://payments.internal/health",
                        "interval": 30,
                        "timeout": 5,
                        "retries": 2,
                        "critical": True,
                    }
                ],
            }
        ],
    }
    assert ops.call("POST", "/api/registry/apply", manifest).json()["created"] == ["payments"]
    check = HealthCheck.objects.get(service__name="payments")
    assert (check.interval, check.timeout, check.retries, check.is_critical) == (30, 5, 2, True)
    again = ops.call("POST", "/api/registry/apply", manifest).json()
    assert again["unchanged"] == ["payments"]
    manifest["services"][0]["checks"][0]["interval"] = 60
    manifest["services"][0]["checks"].append(
        {"name": "tcp", "kind": "tcp", "target": "127.0.0.1:5432"}
    )
    changed = ops.call("POST", "/api/registry/apply", manifest).json()
    assert changed["updated"] == ["payments"]
    assert sorted(HealthCheck.objects.values_list("name", "interval")) == [
        ("http", 60),
        ("tcp", 30),
    ]
    manifest["services"][0]["checks"] = []
    ops.call("POST", "/api/registry/apply", manifest)
    assert not HealthCheck.objects.exists()


def test_a_manifest_with_a_bad_check_applies_nothing(ops):
    manifest = {
        "teams": [{"name": "core"}],
        "services": [
            {
                "name": "payments",
                "team": "core",
                "checks": [{"name": "meta", "kind": "http", "target": "http://169.254.169.254/"}],
            }
        ],
    }
    res = ops.call("POST", "/api/registry/apply", manifest)
    assert res.status_code == 422
    assert "services[0].checks[0].target" in res.json()["error"]["fields"]
    assert not HealthCheck.objects.exists()


def test_run_now_probes_and_records(ops, payments, httpserver):
    httpserver.expect_request("/health").respond_with_json({"status": "pass"})
    ops.call(
        "PUT",
        "/api/services/payments/checks/http",
        {"kind": "http", "target": httpserver.url_for("/health")},
    )
    res = ops.call("POST", "/api/services/payments/checks/http/run")
    assert res.status_code == 200
    assert res.json()["status"] == "healthy" and res.json()["last_response_ms"] is not None
    assert CheckResult.objects.filter(status=Status.HEALTHY).count() == 1


def test_a_heartbeat_check_gets_a_url(ops, payments):
    res = ops.call(
        "PUT",
        "/api/services/payments/checks/nightly",
        {"kind": "heartbeat", "interval": 86400, "grace": 3600},
    )
    assert res.status_code == 201
    url = res.json()["heartbeat_url"]
    assert "/health/heartbeat/" in url
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 24


def test_only_callers_who_may_write_the_check_see_its_heartbeat_url(
    ops, payments, reader, make_token, bob, client
):
    """The URL is a credential: with it anyone can report a beat or a failure."""
    ops.call("PUT", "/api/services/payments/checks/nightly", {"kind": "heartbeat"})
    path = "/api/services/payments/checks"
    assert ops.call("GET", f"{path}/nightly").json()["heartbeat_url"]
    assert reader.call("GET", f"{path}/nightly").json()["heartbeat_url"] is None
    assert reader.call("GET", path).json()[0]["heartbeat_url"] is None
    elsewhere = make_token(["registry:read", "health:write"], services=["other"])
    assert ApiClient(elsewhere.secret).call("GET", path).status_code == 404  # not its to see
    client.force_login(bob)  # a viewer
    listed = client.get(path).json()
    assert listed[0]["heartbeat_url"] is None
    token = HealthCheck.objects.get().heartbeat_token
    assert token not in client.get(f"{path}/nightly").content.decode()


def test_delete_and_list(ops, payments):
    ops.call("PUT", "/api/services/payments/checks/a", {"kind": "tcp", "target": "127.0.0.1:1"})
    ops.call("PUT", "/api/services/payments/checks/b", {"kind": "tcp", "target": "127.0.0.1:2"})
    assert [c["name"] for c in ops.call("GET", "/api/services/payments/checks").json()] == [
        "a",
        "b",
    ]
    assert ops.call("DELETE", "/api/services/payments/checks/a").status_code == 204
    assert ops.call("GET", "/api/services/payments/checks/a").status_code == 404


def test_the_admin_refuses_a_forbidden_target_and_saves_a_good_check(client, admin_user, payments):
    client.force_login(admin_user)
    form = {
        "service": payments.pk,
        "name": "meta",
        "kind": "http",
        "interval": 30,
        "timeout": 5,
        "retries": 0,
        "latency_threshold_ms": "",
        "is_critical": "on",
        "enabled": "on",
        "options": "{}",
    }
    res = client.post(
        "/admin/healthchecks/healthcheck/add/", {**form, "target": "http://169.254.169.254/"}
    )
    assert res.status_code == 200 and "always refused" in res.content.decode()
    assert not HealthCheck.objects.exists()
    res = client.post(
        "/admin/healthchecks/healthcheck/add/",
        {**form, "name": "hb", "kind": "heartbeat", "target": ""},
    )
    assert res.status_code == 302
    check = HealthCheck.objects.get(name="hb")
    assert check.heartbeat_token and CheckState.objects.filter(health_check=check).exists()
    for path in ("healthcheck", "servicehealth", "statuschange", "incident"):
        assert client.get(f"/admin/healthchecks/{path}/").status_code == 200


def test_the_admin_shows_a_kinds_options_as_fields_and_saves_them(client, admin_user, payments):
    """An HTTP check's method, TLS verification and limits are fields of their own (a
    choice, a box, numbers), saved through the same validation as the API."""
    client.force_login(admin_user)
    check = make_check(
        payments, name="web", target="http://127.0.0.1:9/", options={"max_redirects": 2}
    )
    page = client.get(f"/admin/healthchecks/healthcheck/{check.pk}/change/").content.decode()
    assert 'name="option_method"' in page and '<option value="HEAD">' in page
    assert 'name="option_verify_tls"' in page and 'name="option_max_redirects"' in page
    assert 'name="option_max_redirects" value="2"' in page
    form = {
        "kind": "http",
        "target": "http://127.0.0.1:9/",
        "interval": 30,
        "timeout": 5,
        "retries": 0,
        "latency_threshold_ms": "",
        "is_critical": "on",
        "enabled": "on",
        "options": "{}",
        "option_method": "HEAD",
        "option_max_redirects": "3",
        "option_max_body_bytes": "1024",
    }
    res = client.post(f"/admin/healthchecks/healthcheck/{check.pk}/change/", form)
    assert res.status_code == 302, res.context["adminform"].form.errors
    check.refresh_from_db()
    assert check.options["method"] == "HEAD" and check.options["max_redirects"] == 3
    assert check.options["verify_tls"] is False  # the box was left unticked
    bad = client.post(
        f"/admin/healthchecks/healthcheck/{check.pk}/change/",
        {**form, "option_max_redirects": "99"},
    )
    assert bad.status_code == 200 and "max_redirects" in bad.content.decode()
    check.refresh_from_db()
    assert check.options["max_redirects"] == 3

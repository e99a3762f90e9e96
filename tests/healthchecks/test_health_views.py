"""The /health/... contract: open reads, 200/503, application/health+json, heartbeats."""

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from healthchecks.engine import counters, recording, verification
from healthchecks.models import CheckResult, CheckState, HealthCheck
from healthchecks.probes import ProbeOutcome
from healthchecks.reads import healthjson, reports
from healthchecks.status import ErrorCode, Status
from portal.auth import system_actor
from services import deployments
from tests.factories import DependencyFactory, ServiceFactory, make_check, next_due

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
HEALTH_JSON = "application/health+json"


def record(check, status, ms=5.0, errors=(), when=None):
    when = when or timezone.now()
    outcome = ProbeOutcome(
        status,
        response_ms=ms,
        errors=list(errors),
        error_code=ErrorCode.REFUSED if errors else ErrorCode.NONE,
    )
    recording.record([recording.Result(check.pk, when, when, outcome)])


@pytest.fixture
def estate():
    link = DependencyFactory(
        service__name="payments",
        depends_on__name="ledger",
        service__is_critical=True,
        depends_on__is_critical=True,
    )
    ServiceFactory(name="idle")
    payments = make_check(link.service, name="http")
    ledger = make_check(link.depends_on, name="tcp")
    record(payments, Status.HEALTHY, ms=12)
    record(ledger, Status.HEALTHY, ms=3)
    return payments, ledger


def test_services_lists_every_service_with_status_and_reason(client, estate):
    res = client.get("/health/services")
    assert res.status_code == 200
    body = res.json()
    assert body["status"] == "healthy"
    by_name = {s["name"]: s for s in body["services"]}
    assert by_name["payments"]["status"] == "healthy"
    assert by_name["payments"]["response_ms"] == 12
    assert by_name["payments"]["last_check_at"] and by_name["payments"]["since"]
    assert by_name["idle"]["status"] == "unknown"


def test_a_critical_dependency_failing_degrades_dependents_and_the_whole(client, estate):
    _payments, ledger = estate
    record(ledger, Status.UNHEALTHY, errors=["connection refused"])
    body = client.get("/health/services").json()
    by_name = {s["name"]: s for s in body["services"]}
    assert by_name["ledger"]["status"] == "unhealthy"
    assert by_name["payments"]["status"] == "degraded"
    assert "ledger" in by_name["payments"]["reason"]
    assert body["status"] == "unhealthy"
    assert client.get("/health/service/ledger").status_code == 503
    assert client.get("/health/service/payments").status_code == 200
    record(ledger, Status.HEALTHY)
    assert client.get("/health/services").json()["status"] == "healthy"
    assert client.get("/health/service/ledger").status_code == 200


def test_a_503_answer_is_not_logged_as_a_portal_error(client, estate, caplog):
    _payments, ledger = estate
    record(ledger, Status.UNHEALTHY, errors=["connection refused"])
    with caplog.at_level("INFO"):
        assert client.get("/health/service/ledger").status_code == 503
    assert not [r for r in caplog.records if r.name == "django.request"]
    access = [r for r in caplog.records if r.name == "portal.access"]
    assert len(access) == 1  # the request is still in the access log


def test_service_detail_has_checks_dependencies_errors_and_metrics(client, estate):
    payments, _ = estate
    record(payments, Status.UNHEALTHY, errors=["HTTP 500 (expected 2xx/3xx)"])
    res = client.get("/health/service/payments")
    assert res.status_code == 503
    body = res.json()
    assert body["status"] == "unhealthy"
    assert body["checks"][0]["name"] == "http" and body["checks"][0]["status"] == "unhealthy"
    assert body["errors"] == ["http: HTTP 500 (expected 2xx/3xx)"]
    assert body["dependencies"] == [{"service": "ledger", "kind": "hard", "status": "healthy"}]
    assert "response_ms" in body["metrics"]


def test_health_json_follows_the_draft(client, estate):
    res = client.get("/health/service/payments", HTTP_ACCEPT=HEALTH_JSON)
    assert res["Content-Type"] == HEALTH_JSON
    doc = res.json()
    assert doc["status"] == "pass"
    entry = doc["checks"]["http:responseTime"][0]
    assert entry["observedUnit"] == "ms" and entry["observedValue"] == 12
    assert entry["status"] == "pass" and entry["time"].endswith("Z")
    assert doc["checks"]["ledger:dependency"][0]["status"] == "pass"
    overview = client.get("/health/services", HTTP_ACCEPT=HEALTH_JSON).json()
    assert overview["status"] == "pass" and "payments:status" in overview["checks"]


def test_a_stale_check_is_unknown_in_the_detail(client, estate):
    payments, _ = estate
    CheckState.objects.filter(health_check=payments).update(
        last_result_at=timezone.now() - timedelta(hours=1)
    )
    body = client.get("/health/service/payments").json()
    assert body["checks"][0]["status"] == "unknown" and body["checks"][0]["stale"]
    assert body["status"] == "unknown"


def test_unknown_service_is_a_json_404(client):
    res = client.get("/health/service/ghost")
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"


def test_heartbeats_record_and_silence_turns_unhealthy(client):
    service = ServiceFactory(name="cron")
    check = make_check(
        service,
        name="nightly",
        kind="heartbeat",
        target="",
        interval=60,
        heartbeat_token="tok-123",
        options={"grace": 30},
    )
    res = client.post("/health/heartbeat/tok-123")
    assert res.status_code == 200
    state = CheckState.objects.get(health_check=check)
    assert state.status == Status.HEALTHY and state.last_ping_at is not None
    assert next_due(check) > timezone.now() + timedelta(seconds=85)
    assert client.get("/health/heartbeat/tok-123/fail").status_code == 200
    assert CheckState.objects.get(health_check=check).status == Status.UNHEALTHY
    assert client.get("/health/heartbeat/nope").status_code == 404
    assert CheckResult.objects.filter(health_check=check).count() == 2
    assert HealthCheck.objects.get(pk=check.pk).kind == "heartbeat"


def test_metrics_summarise_counts_throughput_lag_and_latency(client, estate):
    body = client.get("/health/metrics").json()
    assert body["services"]["healthy"] == 2 and body["services"]["unknown"] == 1
    assert body["checks"]["healthy"] == 2
    assert body["throughput_per_s"] > 0
    assert body["latency_ms"]["p99"] is not None and "p50" in body["lag_ms"]


def test_prometheus_exposition(client, estate):
    labels = ["healthy", "unhealthy", counters.result_label(Status.UNKNOWN, ErrorCode.MISSED)]
    counters.observe_batch(labels, [0.004, 0.3], [0.002, 0.04, 0.0])
    counters.count("dispatched", 2)
    res = client.get("/metrics")
    assert res.status_code == 200
    text = res.content.decode()
    assert 'portal_service_status{service="payments"} 1.0' in text
    assert 'portal_service_up{service="payments"} 1.0' in text
    assert 'portal_service_up{service="idle"} 0.0' in text
    assert 'portal_heartbeat_age_seconds{component="dispatcher"} +Inf' in text
    assert 'portal_checks_total{status="unhealthy"} 1.0' in text
    assert 'portal_checks_total{status="missed"} 1.0' in text
    assert 'portal_check_latency_seconds_bucket{le="0.005"} 1.0' in text
    assert 'portal_check_latency_seconds_bucket{le="+Inf"} 2.0' in text
    assert 'portal_scheduler_lag_seconds_bucket{le="0.05"} 3.0' in text
    assert "portal_dispatched_checks_total 2.0" in text


@pytest.mark.postgresql
def test_health_reads_are_open_and_take_one_statement(client, estate, django_assert_num_queries):
    """No session, no user: and on PostgreSQL each document is one round trip, which is
    what keeps their latency flat while the engine loads the database."""
    with django_assert_num_queries(1):
        assert client.get("/health/services").status_code == 200
    with django_assert_num_queries(1):
        assert client.get("/health/services", HTTP_ACCEPT=HEALTH_JSON).status_code == 200
    with django_assert_num_queries(1):
        assert client.get("/health/service/payments").status_code == 200


@pytest.mark.postgresql
def test_the_detail_postgresql_reads_matches_the_portable_one(estate):
    """/health/service/{name} reads its rows in one statement on PostgreSQL; the ORM's three
    queries (used on SQLite) are the reference for what they hold."""
    payments, _ = estate
    record(payments, Status.DEGRADED, errors=["slow"], ms=812.5)
    make_check(payments.service, name="off", enabled=False)
    DependencyFactory(service=payments.service, depends_on__name="cache", kind="soft")
    one_statement = reports.detail_rows_in_one_statement("payments")
    portable = reports.detail_rows("payments")
    assert one_statement == portable
    _, checks, dependencies = one_statement
    assert [c["name"] for c in checks] == ["http", "off"]
    assert checks[0]["state__last_outcome"]["errors"] == ["slow"]
    assert checks[0]["state__last_response_us"] == 812500
    assert dependencies == [("cache", "soft", None), ("ledger", "hard", Status.HEALTHY)]
    assert reports.detail_rows_in_one_statement("nope") is None is reports.detail_rows("nope")
    assert reports.service_detail("payments")["status"] == "degraded"


def _moment(text):
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.postgresql
def test_the_overview_postgresql_builds_matches_the_portable_one(estate):
    """/health/services comes out of one SQL statement on PostgreSQL; the Python path (used
    on SQLite) is the reference for its content."""
    _, ledger = estate
    record(ledger, Status.UNHEALTHY, errors=["down"])
    built = json.loads(reports.overview_text(health_json=False))
    reference = reports.services_overview()
    assert built["status"] == reference["status"] == "unhealthy"
    assert len(built["services"]) == len(reference["services"]) == 3
    for ours, theirs in zip(built["services"], reference["services"], strict=True):
        for key in ("name", "status", "critical", "reason", "response_ms"):
            assert ours[key] == theirs[key], key
        for key in ("since", "last_check_at"):
            assert _moment(ours[key]) == _moment(theirs[key]), key
    doc = json.loads(reports.overview_text(health_json=True))
    expected = healthjson.overview_document(reference)
    assert doc["status"] == expected["status"] == "fail"
    assert doc["checks"].keys() == expected["checks"].keys()
    for key, (entry,) in doc["checks"].items():
        (want,) = expected["checks"][key]
        assert {k: v for k, v in entry.items() if k != "time"} == {
            k: v for k, v in want.items() if k != "time"
        }
        assert _moment(entry.get("time")) == _moment(want.get("time"))


def test_removing_a_hard_dependency_clears_the_reason_it_gave(client, estate, make_token):
    """The registry changed, no check did: the derived status follows the registry."""
    from tests.conftest import ApiClient

    _payments, ledger = estate
    record(ledger, Status.UNHEALTHY, errors=["connection refused"])
    by_name = {s["name"]: s for s in client.get("/health/services").json()["services"]}
    assert by_name["payments"]["reason"] == "hard dependency unhealthy: ledger"
    api = ApiClient(make_token(["registry:read", "registry:write"]).secret)
    manifest = {"services": [{"name": "payments", "dependencies": []}]}
    assert api.call("POST", "/api/registry/apply", manifest).status_code == 200
    by_name = {s["name"]: s for s in client.get("/health/services").json()["services"]}
    assert by_name["payments"]["status"] == "healthy" and by_name["payments"]["reason"] == ""
    # And adding it back brings the reason back at once.
    api.call("PUT", "/api/services/payments/dependencies/ledger", {"kind": "hard"})
    by_name = {s["name"]: s for s in client.get("/health/services").json()["services"]}
    assert by_name["payments"]["reason"] == "hard dependency unhealthy: ledger"


@pytest.mark.parametrize(
    ("kind", "status", "entry"),
    [
        ("soft", "unknown", "pass"),
        ("soft", "unhealthy", "pass"),
        ("hard", "unknown", "pass"),
        ("hard", "degraded", "pass"),
        ("hard", "unhealthy", "warn"),
    ],
)
def test_a_dependency_entry_in_health_json_follows_the_services_rules(kind, status, entry):
    detail = {
        "name": "payments",
        "status": "degraded" if entry == "warn" else "healthy",
        "reason": "",
        "warnings": [],
        "checks": [],
        "dependencies": [{"service": "ledger", "kind": kind, "status": status}],
    }
    document = healthjson.service_document(detail)
    dependency = document["checks"]["ledger:dependency"][0]
    assert dependency["status"] == entry and dependency["observedValue"] == status
    worst = max((e[0]["status"] for e in document["checks"].values()), key="pass warn fail".find)
    assert "pass warn fail".find(worst) <= "pass warn fail".find(document["status"])


def test_an_unknown_soft_dependency_does_not_fail_a_warn_document(client, estate):
    payments, _ = estate
    soft = DependencyFactory(service=payments.service, depends_on__name="cache", kind="soft")
    record(payments, Status.DEGRADED)
    doc = client.get("/health/service/payments", HTTP_ACCEPT=HEALTH_JSON).json()
    assert doc["status"] == "warn"
    assert doc["checks"]["cache:dependency"][0]["status"] == "pass"
    assert doc["checks"]["cache:dependency"][0]["observedValue"] == "unknown"
    assert soft.kind == "soft"


# --- The deploy gate: ?since= (issue 19, item 2) ----------------------------------------------


def test_a_gate_counts_no_result_recorded_before_its_moment(client, estate):
    payments, _ = estate
    assert client.get("/health/service/payments").status_code == 200
    res = client.get("/health/service/payments", {"since": "now"})
    assert res.status_code == 503
    body = res.json()
    moment = body["results_since"]
    assert body["status"] == "unknown"
    assert body["reason"] == f"no result since {moment}: http"
    record(payments, Status.HEALTHY)
    res = client.get("/health/service/payments", {"since": moment})
    assert res.status_code == 200 and res.json()["results_since"] == moment


def test_the_gate_for_a_deployment_counts_results_since_its_report(client, estate):
    payments, _ = estate
    deployment, _ = deployments.report(
        "payments", version="2", status="succeeded", config_version=None, config_hash="",
        link="", actor=system_actor("ci"),
    )  # fmt: skip
    res = client.get("/health/service/payments", {"deployment": deployment.pk})
    assert res.status_code == 503
    moment = res.json()["results_since"]
    assert moment == deployment.created_at.isoformat().replace("+00:00", "Z")
    record(payments, Status.HEALTHY)
    res = client.get("/health/service/payments", {"deployment": deployment.pk})
    assert res.status_code == 503  # usable, but the verdict is not in yet: the same gate
    assert res.json()["deployment"] == {
        "id": deployment.pk,
        "version": "2",
        "verification": "pending",
        "reason": "",
    }
    verification.verify_pending(timezone.now())
    res = client.get("/health/service/payments", {"deployment": deployment.pk})
    assert res.status_code == 200 and res.json()["deployment"]["verification"] == "passed"
    assert client.get("/health/service/nope", {"deployment": deployment.pk}).status_code == 404


def test_a_deployment_of_another_service_or_with_since_is_a_422(client, estate):
    elsewhere, _ = deployments.report(
        "ledger", version="2", status="succeeded", config_version=None, config_hash="",
        link="", actor=system_actor("ci"),
    )  # fmt: skip
    for query in (
        {"deployment": elsewhere.pk},
        {"deployment": "x1"},
        {"deployment": "9" * 30},
        {"deployment": elsewhere.pk, "since": "now"},
    ):
        res = client.get("/health/service/payments", query)
        assert res.status_code == 422, query
        assert "deployment" in res.json()["error"]["fields"], query


def test_a_fresh_failure_fails_the_gate_though_retries_keep_the_state_healthy(client):
    service = ServiceFactory(name="api")
    check = make_check(service, name="http", retries=2)
    record(check, Status.HEALTHY, when=timezone.now() - timedelta(seconds=30))
    moment = timezone.now()
    record(check, Status.UNHEALTHY, errors=["refused"])
    assert CheckState.objects.get(health_check=check).status == Status.HEALTHY  # retried
    assert client.get("/health/service/api").status_code == 200
    res = client.get("/health/service/api", {"since": moment.isoformat()})
    assert res.status_code == 503
    assert res.json()["checks"][0]["status"] == "unhealthy"


def test_the_gate_waits_for_critical_checks_only_and_never_for_heartbeats(client):
    service = ServiceFactory(name="api")
    critical = make_check(service, name="http", is_critical=True)
    make_check(service, name="tcp", is_critical=False)
    make_check(service, name="nightly", kind="heartbeat", target="", heartbeat_token="h" * 32)
    moment = timezone.now()
    record(critical, Status.HEALTHY)
    res = client.get("/health/service/api", {"since": moment.isoformat()})
    # tcp and nightly: no result yet, not waited for -- and, waiting for their first result,
    # they say nothing of the service (issue 22: a check never run degrades nothing).
    assert res.status_code == 200
    assert res.json()["status"] == "healthy"
    waiting = {c["name"] for c in res.json()["checks"] if c["waiting"]}
    assert waiting == {"tcp", "nightly"}


@pytest.mark.parametrize("since", ["0.5", "yesterday", "2026-13-01T00:00:00Z", ""])
def test_a_bad_since_is_a_422_naming_the_field(client, estate, since):
    res = client.get("/health/service/payments", {"since": since})
    assert res.status_code == 422
    assert list(res.json()["error"]["fields"]) == ["since"]


def test_a_probe_that_began_before_the_gates_moment_does_not_count(client):
    """A result counts from when its probe started: one begun before the release and
    recorded after it says nothing about the release."""
    check = make_check(ServiceFactory(name="api"), name="http")
    began = timezone.now()
    moment = began + timedelta(seconds=1)
    recording.record(
        [recording.Result(check.pk, began, began, ProbeOutcome(Status.HEALTHY, response_ms=1))]
    )
    res = client.get("/health/service/api", {"since": moment.isoformat()})
    assert res.status_code == 503 and res.json()["reason"].startswith("no result since")
    assert client.get("/health/service/api", {"since": began.isoformat()}).status_code == 200

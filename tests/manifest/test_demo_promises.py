"""What the README promises of `make run`'s demo beyond loading it (test_demo.py): its
logins -- admin / admin, operator / operator of the payments team, viewer / viewer, made
only with DEBUG on -- the SLO targets it carries, and the targets whose trends cycle, as
served (their cycles over days: test_demo_cycles.py)."""

import io
import json
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from healthchecks.models import HealthCheck
from healthchecks.watch import demo
from services.models import Service

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def logs_in(username: str, password: str) -> bool:
    client = Client()
    answer = client.post("/accounts/login/", {"username": username, "password": password})
    return answer.status_code == 302 and "_auth_user_id" in client.session


def test_with_debug_the_demo_makes_a_login_for_each_role(settings):
    settings.DEBUG = True
    call_command("load_demo", stdout=io.StringIO())
    for name in ("admin", "operator", "viewer"):
        assert logs_in(name, name), name
    admin, operator, viewer = (
        User.objects.get(username=n) for n in ("admin", "operator", "viewer")
    )
    assert admin.is_superuser
    assert list(operator.groups.values_list("name", flat=True)) == ["operator"]
    assert list(operator.teams.values_list("name", flat=True)) == ["payments"]
    assert list(viewer.groups.values_list("name", flat=True)) == ["viewer"]
    assert not (operator.is_superuser or viewer.is_superuser)


def test_without_debug_the_demo_makes_no_login(settings):
    settings.DEBUG = False
    call_command("load_demo", stdout=io.StringIO())
    assert not User.objects.exists()
    assert not logs_in("admin", "admin")


def test_the_demo_carries_slo_targets_for_payments_and_api_gateway():
    call_command("load_demo", stdout=io.StringIO())
    targets = dict(Service.objects.exclude(slo_target=None).values_list("name", "slo_target"))
    assert targets == {"payments": 99.9, "api-gateway": 99.95}


def test_the_ledger_target_answers_as_slowly_as_its_cycle_says(client, monkeypatch):
    """Its check: the 400 ms threshold. A hundred minutes after the web process started (in
    the rise, 540 ms) it answers no sooner than that; ten minutes into its recovery, 540 ms
    again."""
    call_command("load_demo", stdout=io.StringIO())
    check = HealthCheck.objects.get(service__name="ledger")
    assert check.latency_threshold_ms == 400 and check.target.endswith("/demo/degrading")
    for minutes in (100, 130):
        assert demo.degrading_ms(minutes) == 540
        monkeypatch.setattr(demo, "STARTED", time.monotonic() - minutes * 60)
        began = time.monotonic()
        assert client.get("/demo/degrading").status_code == 200
        assert time.monotonic() - began >= 0.54


def test_the_auth_document_warns_while_its_queue_backs_up_and_passes_once_drained(
    client, monkeypatch
):
    def document_at(minutes: float) -> dict:
        monkeypatch.setattr(demo, "STARTED", time.monotonic() - minutes * 60)
        answer = client.get("/demo/health-json")
        assert answer["Content-Type"] == "application/health+json"
        return json.loads(answer.content)

    backed_up = document_at(36)  # 113 queued
    assert backed_up["status"] == "warn"
    assert backed_up["checks"]["queue:depth"][0]["observedValue"] == 113
    assert backed_up["checks"]["queue:depth"][0]["output"] == "queue is backing up"
    drained = document_at(24 * 60 + 55)  # a day later, 55 minutes into its hour: 35 queued
    assert drained["status"] == "pass"
    assert drained["checks"]["queue:depth"][0]["observedValue"] == 35


def test_each_demo_service_has_the_checks_the_readme_table_gives_it(client):
    """The README's demo table: which target each service's check hits (and thresholds)."""
    call_command("load_demo", stdout=io.StringIO())
    checks = {(c.service.name, c.name): c for c in HealthCheck.objects.select_related("service")}
    targets = {key: c.target.rpartition("/demo/")[2] for key, c in checks.items() if c.target}
    assert targets == {
        ("postgres-main", "http"): "healthy",
        ("api-gateway", "http"): "healthy",
        ("redis-cache", "http"): "flaky",
        ("auth", "health"): "health-json",
        ("ledger", "http"): "degrading",
        ("payments", "http"): "slow",
        ("notifications", "http"): "down",
    }
    assert checks[("redis-cache", "http")].retries == 1
    assert checks[("ledger", "http")].latency_threshold_ms == 400
    assert checks[("payments", "http")].latency_threshold_ms == 500
    heartbeat = checks[("payments", "worker")]
    assert heartbeat.kind == "heartbeat" and not heartbeat.is_critical
    assert not HealthCheck.objects.filter(service__name="reports").exists()
    began = time.monotonic()
    assert client.get("/demo/slow").status_code == 200
    assert time.monotonic() - began >= 0.8  # over payments' 500 ms threshold
    assert client.get("/demo/down").status_code == 503

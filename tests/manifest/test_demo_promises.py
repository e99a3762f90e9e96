"""What the README promises of `make run`'s demo beyond loading it (test_demo.py): its
logins -- admin / admin, operator / operator of the payments team, viewer / viewer, made
only with DEBUG on -- the SLO targets it carries, and the ledger target that slows by 40 ms
a minute towards its check's 400 ms threshold."""

import io
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


def test_the_ledger_slows_by_40_ms_a_minute_towards_its_400_ms_threshold(client, monkeypatch):
    """Ten minutes after the start its answer takes 400 ms: it reaches its threshold."""
    call_command("load_demo", stdout=io.StringIO())
    check = HealthCheck.objects.get(service__name="ledger")
    assert check.latency_threshold_ms == 400 and check.target.endswith("/demo/degrading")
    monkeypatch.setattr(demo, "STARTED", time.monotonic() - 10 * 60)
    began = time.monotonic()
    assert client.get("/demo/degrading").status_code == 200
    took = time.monotonic() - began
    assert 0.4 <= took < 0.48

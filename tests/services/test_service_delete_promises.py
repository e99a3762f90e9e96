"""The README's `DELETE /api/services/{name}`: 204, and its configuration history and checks
go with it -- schema versions, configuration versions, deployments, checks with their state,
schedule and results -- nothing of it left behind."""

import pytest
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.models import CheckResult, CheckSchedule, CheckState, HealthCheck
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from services.models import ConfigSchema, ConfigVersion, Deployment, Service
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_deleting_a_service_takes_its_configuration_history_and_checks_with_it(make_token):
    client = ApiClient(
        make_token(
            ["registry:read", "registry:write", "config:read", "config:write", "health:write"]
        ).secret
    )
    service = ServiceFactory(name="shop")
    keep = ServiceFactory(name="other")
    base = "/api/services/shop/config"
    assert client.call("PUT", f"{base}/schema", SEED_SCHEMA).status_code == 201
    for version in range(2):
        body = {"values": {"api_timeout": 10 + version}, "base_version": version}
        assert client.call("POST", base, body).status_code == 201
    deployed = {"version": "1.0", "config_version": 2}
    assert client.call("POST", "/api/services/shop/deployments", deployed).status_code == 201
    now = timezone.now()
    for owner in (service, keep):
        check = make_check(owner, name="http")
        outcome = ProbeOutcome(Status.HEALTHY)
        recording.record([recording.Result(check.pk, now, now, outcome)])

    assert client.call("DELETE", "/api/services/shop").status_code == 204
    assert client.call("GET", "/api/services/shop").status_code == 404
    assert not Service.objects.filter(name="shop").exists()
    for model in (ConfigSchema, ConfigVersion, Deployment):
        assert not model.objects.exists(), model.__name__
    for model in (HealthCheck, CheckState, CheckSchedule, CheckResult):
        rows = model.objects.all()
        owners = {
            r.service.name if model is HealthCheck else r.health_check.service.name for r in rows
        }
        assert owners == {"other"}, model.__name__

"""Metrics across processes (docs/decisions.md): workers count into Redis and /metrics reads it.
Without Redis -- the embedded mode, or Redis unreachable -- the counters and histograms are
left out rather than shown wrong (a zero would read as "nothing recorded"), the statuses from
the database are still there, and nothing fails."""

import pytest
from django.test import Client

from healthchecks.engine import counters
from healthchecks.models import ServiceHealth
from healthchecks.status import Status
from tests.factories import ServiceFactory
from tests.healthchecks.servers import closed_port

pytestmark = pytest.mark.django_db
FROM_REDIS = (
    "portal_checks_total",
    "portal_dispatched_checks_total",
    "portal_check_latency_seconds",
    "portal_scheduler_lag_seconds",
)


@pytest.fixture
def fresh_client():
    """The Redis client is made once per process (from the settings it starts with): the
    test's own settings need a client of their own, and the next test the usual one."""
    counters.redis_client.cache_clear()
    yield
    counters.redis_client.cache_clear()


@pytest.mark.parametrize("where", ["embedded", "unreachable"])
def test_without_redis_metrics_leave_the_counters_out_and_nothing_fails(
    settings, fresh_client, where
):
    ServiceHealth.objects.create(service=ServiceFactory(name="payments"), status=Status.HEALTHY)
    settings.REDIS_URL = "" if where == "embedded" else f"redis://127.0.0.1:{closed_port()}/0"
    counters.observe_batch(["healthy", "unhealthy"], [0.004, 0.3], [0.002, 0.04])  # no raise
    counters.count("dispatched", 2)

    answer = Client().get("/metrics")
    assert answer.status_code == 200
    text = answer.content.decode()
    assert 'portal_service_status{service="payments"} 1.0' in text
    assert 'portal_service_up{service="payments"} 1.0' in text
    for family in FROM_REDIS:
        assert family not in text, family
    assert Client().get("/health/metrics").status_code == 200

"""The README's "Health checks": a check's `timeout` is at most its interval and 60 s. A
property over the API: any interval and timeout are stored exactly when the timeout is
within both bounds, and refused otherwise with a 422 naming `timeout` (nothing stored)."""

import pytest
from hypothesis import HealthCheck as Suppress
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.models import HealthCheck
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def ops(make_token):
    ServiceFactory(name="payments")
    return ApiClient(make_token(["registry:read", "registry:write", "health:write"]).secret)


@hypothesis_settings(
    max_examples=120, deadline=None, suppress_health_check=[Suppress.function_scoped_fixture]
)
@example(interval=60, timeout=60.0)
@example(interval=120, timeout=60.5)
@example(interval=30, timeout=30.5)
@given(
    interval=st.integers(min_value=1, max_value=600),
    timeout=st.floats(min_value=0.1, max_value=120, allow_nan=False).map(lambda t: round(t, 1)),
)
def test_a_timeout_is_stored_only_within_the_interval_and_60_seconds(ops, interval, timeout):
    HealthCheck.objects.all().delete()
    body = {"kind": "tcp", "target": "127.0.0.1:5432", "interval": interval, "timeout": timeout}
    answer = ops.call("PUT", "/api/services/payments/checks/c", body)
    if timeout <= min(interval, 60):
        assert answer.status_code == 201, answer.json()
        assert HealthCheck.objects.get().timeout == timeout
    else:
        assert answer.status_code == 422, answer.json()
        assert "timeout" in answer.json()["error"]["fields"]
        assert not HealthCheck.objects.exists()

"""The README's rule for shedding load ("Scaling, and what the engine does when it is short of
CPU"), with its figures pinned here rather than read from the code's constants: while fewer
than 95 % of probes start on time over the last 3 s (and at least 5 a second start late: a
handful is a worker starting up, not an overload), the dispatcher sends only what the
workers were seen to start on time; and /metrics shows the demand over the last 10 s.

Reports go through real Redis, as workers and the dispatcher write them; the dispatcher's
decision is ``budget_for_run`` (what one run may send), /metrics is read over the API.
"""

import json
import time

import pytest
import redis
from django.conf import settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.engine import capacity

pytestmark = pytest.mark.django_db
ON_TIME_SHARE, LATE_PER_SECOND, DECIDES_OVER, METRICS_OVER = 0.95, 5, 3, 10


def push(key: str, seconds_ago: float, **report) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.lpush(key, json.dumps({"t": time.time() - seconds_ago, **report}))
    client.close()


def clear() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(capacity.WORKERS_KEY, capacity.DISPATCH_KEY, capacity.BUDGET_KEY)
    client.close()


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    probed=st.integers(min_value=1, max_value=3000),
    on_time_share=st.floats(min_value=0, max_value=1),
    older_probed=st.integers(min_value=0, max_value=3000),
    older_on_time_share=st.floats(min_value=0, max_value=1),
)
# Exactly at a boundary (found by make check): 15 late in 3 s are 5 a second, which the rates'
# rounding (55/3 - 40/3 = 4.999...) read as fewer; 19 of 20 on time are 95 %, not fewer.
@example(probed=55, on_time_share=40 / 55, older_probed=0, older_on_time_share=0)
@example(probed=20, on_time_share=19 / 20, older_probed=0, older_on_time_share=0)
@example(probed=300, on_time_share=285 / 300, older_probed=0, older_on_time_share=0)
def test_the_dispatcher_sheds_exactly_while_fewer_than_95_percent_start_on_time(
    probed, on_time_share, older_probed, older_on_time_share
):
    clear()
    on_time = int(probed * on_time_share)
    push(capacity.WORKERS_KEY, 1.0, probed=probed, on_time=on_time)  # within the last 3 s
    older_on_time = int(older_probed * older_on_time_share)
    # Older than 3 s (yet within /metrics' 10 s): no part of the decision.
    push(capacity.WORKERS_KEY, 5.0, probed=older_probed, on_time=older_on_time)
    push(capacity.DISPATCH_KEY, 1.0, due=probed * 2, sent=probed, skipped=0)
    behind = (
        on_time / probed < ON_TIME_SHARE and (probed - on_time) / DECIDES_OVER >= LATE_PER_SECOND
    )
    limit = capacity.budget_for_run(1.0)
    if behind:  # one second's worth of what the workers started on time
        assert limit == max(1, int(on_time / DECIDES_OVER)), (probed, on_time, limit)
    else:
        assert limit is None, (probed, on_time, limit)


def test_metrics_show_the_last_10_seconds(client):
    clear()
    push(capacity.DISPATCH_KEY, 2.0, due=400, sent=300, skipped=100)
    push(capacity.DISPATCH_KEY, 8.0, due=600, sent=600, skipped=0)
    push(capacity.DISPATCH_KEY, 12.0, due=9000, sent=0, skipped=9000)  # older than 10 s
    push(capacity.WORKERS_KEY, 2.0, probed=500, on_time=450)
    push(capacity.WORKERS_KEY, 12.0, probed=500, on_time=0)  # older than 10 s
    text = client.get("/metrics").content.decode()
    assert f"Check slots coming due (last {METRICS_OVER} s)" in text
    assert "portal_probe_due_per_second 100.0" in text  # (400 + 600) / 10
    assert "portal_probe_skipped_per_second 10.0" in text
    assert "portal_probe_on_time_ratio 0.9" in text  # below 0.95: the dispatcher sheds

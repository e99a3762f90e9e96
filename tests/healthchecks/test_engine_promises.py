"""The README's "How it runs", in what test_engine.py and test_worker.py leave open: a
worker's recording thread writes results as the batch goes (every HEALTH_FLUSH_SECONDS,
250 ms by default), not when the batch ends; and the broker hands a lost worker's batch out
again after about 90 s, a visibility timeout longer than any batch may run, so a live batch
is never handed out twice."""

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from healthchecks.engine import batches
from healthchecks.models import CheckResult
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def recorded(check) -> bool:
    """Whether a result of ``check`` is in the database (the test's SQLite database is an
    in-memory one with a shared cache, whose table lock a reader may meet while the worker's
    recording thread writes: read again)."""
    try:
        return CheckResult.objects.filter(health_check=check).exists()
    except OperationalError:
        return False


def test_results_are_written_every_250_ms_while_the_batch_runs(httpserver):
    assert settings.HEALTH_FLUSH_SECONDS == 0.25  # the default the README states
    httpserver.expect_request("/ok").respond_with_data("fine")
    service = ServiceFactory()
    early = make_check(service, name="early", target=httpserver.url_for("/ok"))
    late = make_check(service, name="late", target=httpserver.url_for("/ok"))
    now = timezone.now()
    items = [(early.pk, now.isoformat()), (late.pk, (now + timedelta(seconds=3)).isoformat())]
    batch = threading.Thread(target=batches.run_batch, args=(items,))
    batch.start()
    try:
        deadline = time.monotonic() + 2.5
        while not recorded(early):
            assert time.monotonic() < deadline, "the first result waited for the batch's end"
            time.sleep(0.05)
        seen_while_running = batch.is_alive()
        late_yet = recorded(late)
    finally:
        batch.join(30)
    assert seen_while_running and not late_yet
    assert CheckResult.objects.count() == 2


def test_a_lost_workers_batch_is_handed_out_again_after_about_90_seconds():
    if not settings.REDIS_URL:
        pytest.skip("the embedded broker has no visibility timeout")
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert 80 <= timeout <= 100  # "about 90 s"
    longest_batch = settings.HEALTH_DISPATCH_LOOKAHEAD + settings.HEALTH_CHECK_TIMEOUT_MAX
    assert timeout > longest_batch + 10  # never handed out again while it still runs

"""A batch through the engine: real local HTTP servers, real PostgreSQL, recorded results."""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from healthchecks.engine import batches
from healthchecks.models import CheckResult, CheckState, ServiceHealth
from healthchecks.status import Status
from tests.factories import ServiceFactory, make_check

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def claims_for(checks, due):
    return [(c.pk, due.isoformat()) for c in checks]


def test_a_batch_probes_concurrently_and_records_everything(httpserver):
    httpserver.expect_request("/ok").respond_with_data("fine")
    httpserver.expect_request("/broken").respond_with_data("no", status=500)
    service = ServiceFactory(name="shop")
    ok = [make_check(service, name=f"ok-{i}", target=httpserver.url_for("/ok")) for i in range(20)]
    broken = make_check(service, name="broken", target=httpserver.url_for("/broken"))
    due = timezone.now()
    stats = batches.run_batch(claims_for([*ok, broken], due))
    assert stats["probed"] == 21 and stats["skipped"] == 0
    assert CheckResult.objects.filter(status=Status.HEALTHY).count() == 20
    assert CheckState.objects.get(health_check=broken).status == Status.UNHEALTHY
    assert "HTTP 500" in CheckState.objects.get(health_check=broken).last_outcome["errors"][0]
    assert ServiceHealth.objects.get(service=service).status == Status.UNHEALTHY


def test_a_rerun_batch_skips_what_was_recorded(httpserver):
    httpserver.expect_request("/ok").respond_with_data("fine")
    check = make_check(target=httpserver.url_for("/ok"))
    items = claims_for([check], timezone.now())
    batches.run_batch(items)
    hits = len(httpserver.log)
    again = batches.run_batch(items)
    assert {k: again[k] for k in ("claimed", "skipped", "probed", "changed")} == {
        "claimed": 1,
        "skipped": 1,
        "probed": 0,
        "changed": 0,
    }
    assert len(httpserver.log) == hits
    assert CheckResult.objects.count() == 1


def test_probes_start_at_their_due_time(httpserver):
    httpserver.expect_request("/ok").respond_with_data("fine")
    check = make_check(target=httpserver.url_for("/ok"))
    due = timezone.now() + timedelta(milliseconds=600)
    batches.run_batch(claims_for([check], due))
    lag = CheckResult.objects.get().lag_ms
    assert 0 <= lag < 250


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a target that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_hanging_target_does_not_hold_back_the_others(httpserver, silent_server):
    httpserver.expect_request("/ok").respond_with_data("fine")
    service = ServiceFactory()
    fast = make_check(service, name="fast", target=httpserver.url_for("/ok"))
    hanging = make_check(service, name="hanging", target=silent_server, timeout=1.0)
    batches.run_batch(claims_for([fast, hanging], timezone.now()))
    state = CheckState.objects.get(health_check=hanging)
    assert state.status == Status.UNHEALTHY and "timed out" in state.last_outcome["errors"][0]
    fast_state = CheckState.objects.get(health_check=fast)
    assert fast_state.status == Status.HEALTHY
    # The fast probe was not slowed down by the hanging one.
    assert fast_state.last_response_us < 500_000


def test_a_disabled_or_deleted_check_is_not_probed(httpserver):
    httpserver.expect_request("/ok").respond_with_data("fine")
    off = make_check(target=httpserver.url_for("/ok"), enabled=False)
    stats = batches.run_batch(
        [*claims_for([off], timezone.now()), (999999, timezone.now().isoformat())]
    )
    assert stats["probed"] == 0 and not httpserver.log


def test_results_being_recorded_when_the_batch_ends_are_not_lost(httpserver, monkeypatch, settings):
    """No flush may be dropped: with the recording thread slow, flushes queue up behind it
    (by time and by size) and the batch ends while some are still waiting their turn."""
    settings.HEALTH_FLUSH_SECONDS = 0.02
    settings.HEALTH_FLUSH_SIZE = 3
    httpserver.expect_request("/ok").respond_with_data("fine")
    service = ServiceFactory()
    checks = [
        make_check(service, name=f"c{i}", target=httpserver.url_for("/ok")) for i in range(40)
    ]
    slow_record = batches.recording.record

    def record(chunk):
        time.sleep(0.15)
        return slow_record(chunk)

    monkeypatch.setattr(batches.recording, "record", record)
    due = timezone.now()
    items = [
        (c.pk, (due + timedelta(milliseconds=5 * i)).isoformat()) for i, c in enumerate(checks)
    ]
    stats = batches.run_batch(items)
    assert stats["probed"] == 40
    assert CheckResult.objects.count() == 40

"""Overload honesty: the engine tells its own trouble apart from the targets' -- back-pressure
in the dispatcher, the portal reporting its own overload, and a starved checker's probes not
believed -- through Redis, real workers and the API."""

import json
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from werkzeug import Response

from healthchecks import tasks
from healthchecks.engine import capacity
from healthchecks.models import CheckResult, CheckState, Incident, ServiceHealth
from healthchecks.status import ErrorCode, Status
from tests.factories import ServiceFactory, make_check, next_due


def report_workers(probed: int, on_time: int, seconds: float = 5.0) -> None:
    """Reports as probe workers write them, spread over the last ``seconds``."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    now = time.time()
    for i in range(5):
        entry = {"t": now - i * seconds / 5, "probed": probed // 5, "on_time": on_time // 5}
        client.lpush(capacity.WORKERS_KEY, json.dumps({**entry, "cpu_s": 0.1}))
    client.close()


# --- The rules, on synthetic reports ---------------------------------------------------------


def test_pressure_reads_a_window_of_reports():
    now = 1000.0
    workers = [
        {"t": 995, "probed": 500, "on_time": 300, "overloaded": 7, "cpu_s": 2.5},
        {"t": 998, "probed": 500, "on_time": 400, "loop_lag_max_ms": 900, "cpu_s": 2.5},
        {"t": 980, "probed": 9999, "on_time": 0},  # outside the window
    ]
    rounds = [{"t": 999, "due": 2000, "sent": 1400, "skipped": 600}]
    seen = capacity.pressure_from(workers, rounds, now, 10)
    assert seen.probed_per_s == 100 and seen.on_time_per_s == 70
    assert seen.on_time_ratio == 0.7 and seen.behind
    assert (seen.due_per_s, seen.skipped_per_s, seen.overloaded_per_s) == (200, 60, 0.7)
    assert seen.loop_lag_ms == 900 and seen.checks_per_cpu_s == 200
    assert seen.describe() == "probe capacity exceeded: 200 due per second, 70 started on time"


def test_a_full_list_is_read_over_the_seconds_it_covers():
    """Busy workers fill the list (KEEP reports) faster than a long window: the rates are
    those of the seconds it holds, not diluted over the whole window."""
    now = 1000.0
    full = [{"t": now - i * 0.05, "probed": 10, "on_time": 10} for i in range(capacity.KEEP)]
    seen = capacity.pressure_from(full, [], now, 60)
    covered = now - full[-1]["t"]
    assert covered < 60
    assert round(seen.probed_per_s) == round(10 * capacity.KEEP / covered)
    partial = capacity.pressure_from(full[:10], [], now, 60)
    assert partial.probed_per_s == 100 / 60


def test_the_budget_follows_what_the_workers_start_on_time_and_then_lets_go():
    behind = capacity.pressure_from([{"t": 1, "probed": 1000, "on_time": 600}], [], 1, 10)
    shed = capacity.next_budget(behind, capacity.Budget(), 1.0, now=1)
    assert (shed.limit, shed.behind) == (60, True)
    on_time = capacity.pressure_from(
        [{"t": 1, "probed": 1000, "on_time": 1000}], [{"t": 1, "due": 1000}], 1, 10
    )
    limits, budget = [], shed
    while budget.limit is not None:
        budget = capacity.next_budget(on_time, budget, 1.0, now=100)  # the ceiling forgotten
        limits.append(budget.limit)
    assert limits == [76, 96, 121, None]  # grows, then lets go once it covers the demand
    assert capacity.next_budget(on_time, capacity.Budget(), 1.0, now=1) == capacity.Budget()


def test_a_handful_of_late_probes_is_not_an_overload():
    """A worker starting up probes its first batch late: 13 of 20 late in a minute is not a
    capacity problem (backend stays healthy, nothing is shed); the same share at volume is."""
    startup = capacity.pressure_from([{"t": 1, "probed": 20, "on_time": 7}], [], 1, 60)
    assert startup.on_time_ratio < capacity.ON_TIME_TARGET and not startup.behind
    busy = capacity.pressure_from([{"t": 1, "probed": 2000, "on_time": 700}], [], 1, 60)
    assert busy.behind
    small = capacity.pressure_from(
        [{"t": 1, "probed": 20, "on_time": 7}], [{"t": 1, "due": 60}], 1, 60
    )
    assert small.describe() == "probe capacity exceeded: 1.0 due per second, 0.1 started on time"


def test_near_the_budget_that_proved_too_much_it_grows_slowly():
    """Capacity fell to ~1,000/s under a 2,000/s demand: the dispatcher sheds, then probes back
    up quickly to 90 % of where it tipped over and slowly beyond -- until the ceiling is
    forgotten, CEILING_SECONDS after the workers were last behind."""
    demand = [{"t": 1, "due": 2000}]
    behind = capacity.pressure_from([{"t": 1, "probed": 1500, "on_time": 1000}], demand, 1, 1)
    on_time = capacity.pressure_from([{"t": 1, "probed": 900, "on_time": 900}], demand, 1, 1)
    budget = capacity.next_budget(behind, capacity.Budget(limit=1200), 1.0, now=0)
    assert (budget.limit, budget.ceiling) == (1000, 1200)
    again = capacity.next_budget(behind, budget, 1.0, now=1)  # still behind: same episode
    assert (again.limit, again.ceiling) == (1000, 1200)
    steps = [again]
    for second in range(2, 8):
        steps.append(capacity.next_budget(on_time, steps[-1], 1.0, now=second))
    assert [s.limit for s in steps[1:]] == [1251, 1314, 1380, 1450, 1523, 1600]
    late = capacity.next_budget(on_time, steps[-1], 1.0, now=1 + capacity.CEILING_SECONDS)
    assert late.ceiling is None and late.limit == int(1600 * capacity.FAST_GROWTH) + 1


# --- The dispatcher, the portal's own status, /metrics ---------------------------------------


@pytest.mark.django_db
def test_behind_workers_make_the_dispatcher_keep_back_all_but_the_critical_and_earliest(client):
    # 5 a second on time over the dispatcher's window (3 s), 15 % of what ran
    report_workers(probed=100, on_time=15, seconds=2.5)
    now = timezone.now()
    service = ServiceFactory()
    critical = [
        make_check(
            service, name=f"c{i}", is_critical=True, next_due_at=now + timedelta(milliseconds=i)
        )
        for i in range(2)
    ]
    others = [
        make_check(service, name=f"o{i}", is_critical=False, next_due_at=now - timedelta(seconds=i))
        for i in range(6)
    ]
    sent = tasks.dispatch_due_checks()
    assert sent == 5  # the budget: what the workers started on time in one second
    skipped = CheckResult.objects.filter(error_code=ErrorCode.SKIPPED)
    assert skipped.count() == 3 and set(skipped.values_list("status", flat=True)) == {0}
    kept_back = set(skipped.values_list("health_check_id", flat=True))
    assert not kept_back & {c.pk for c in critical}
    assert others[-1].pk not in kept_back  # the earliest of the others was sent
    for check in [*critical, *others]:  # every slot claimed: none is made up later
        assert next_due(check) > now
    assert not CheckState.objects.exclude(last_result_at=None).exists()  # no state moved
    backend = capacity.pressure()
    assert backend.skipped_per_s > 0


@pytest.mark.django_db
def test_the_portal_reports_its_own_overload_as_itself(client):
    report_workers(probed=2000, on_time=1400, seconds=10)
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    entry = {"t": time.time(), "due": 20_000, "sent": 14_000, "skipped": 6000}
    client_redis.lpush(capacity.DISPATCH_KEY, json.dumps(entry))
    client_redis.close()
    body = client.get("/health/service/backend").json()
    check = next(c for c in body["checks"] if c["name"] == "capacity")
    assert check["status"] == "degraded"
    assert check["errors"] == ["probe capacity exceeded: 333 due per second, 23 started on time"]
    assert client.get("/health/service/backend").status_code == 200  # still usable
    text = client.get("/metrics").content.decode()
    assert "portal_probe_on_time_ratio 0.7" in text
    assert "portal_probe_skipped_per_second 600.0" in text  # the last 10 s
    assert "portal_probe_capacity_per_process" in text


# --- A starved checker, through a real worker ------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_probe_seen_while_its_worker_was_stalled_is_unknown_and_opens_no_incident(
    start_worker, httpserver
):
    """A check whose target answers in 50 ms, slowed past its 300 ms threshold only because
    another check of its batch blocked the worker's event loop for 1.5 s."""
    httpserver.expect_request("/quick").respond_with_handler(
        lambda request: (time.sleep(0.05), Response("fine"))[1]
    )
    web = ServiceFactory(name="web")
    quick = make_check(
        web,
        name="quick",
        target=httpserver.url_for("/quick"),
        latency_threshold_ms=300,
        interval=60,
        timeout=5,
    )
    stall = make_check(
        ServiceFactory(name="chaos"),
        name="stall",
        kind="python",
        target="tests.healthchecks.callables.stall_the_loop",
        interval=60,
        timeout=5,
    )
    start_worker(["probes"], HEALTH_CALLABLE_PREFIXES="tests.healthchecks.callables.")
    due = timezone.now() + timedelta(seconds=1)
    items = [(quick.pk, due.isoformat()), (stall.pk, (due + timedelta(seconds=0.02)).isoformat())]
    tasks.probe_batch.apply_async(args=[items])
    deadline = time.monotonic() + 60
    while CheckResult.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    result = CheckResult.objects.get(health_check=quick)
    assert (result.status, result.error_code) == (Status.UNKNOWN, ErrorCode.CHECKER_OVERLOADED)
    state = CheckState.objects.get(health_check=quick)
    assert state.last_result_at is None  # the check's state did not move
    assert not Incident.objects.filter(service=web).exists()
    assert not ServiceHealth.objects.filter(service=web, status__gt=Status.HEALTHY).exists()

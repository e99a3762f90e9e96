"""The beat lease (portal.beat) on the real Redis: one holder at a time, trusted only until a
margin before it could have expired, so a holder that stopped and resumed learns it lost the
lease before it sends anything; and LeasedScheduler sending only while it holds it, its
messages counted on the real broker's queues.

Time is a fake monotonic clock on the beats' side; on Redis' side a key's time to live is
shortened by as much (``Timeline.advance``), so both sides see the same time pass. Leases here
are 100 s long: the few real milliseconds a test takes are nothing beside them.
"""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import redis
from celery import Celery
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from portal import beat
from portal.beat import LAST_RUNS_KEY, LEASE_KEY, Lease, LeasedScheduler

LEASE = 100.0  # seconds: trusted 80 s after a renewal was asked (the margin is a fifth)


class Timeline:
    """One fake clock for every beat, and Redis' keys aged with it."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        left = self.client.pttl(LEASE_KEY)
        if left > 0:
            if left - seconds * 1000 <= 0:
                self.client.delete(LEASE_KEY)
            else:
                self.client.pexpire(LEASE_KEY, round(left - seconds * 1000))


@pytest.fixture
def client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def timeline(client):
    return Timeline(client)


def lease(client, timeline, name: str) -> Lease:
    return Lease(client, LEASE, owner=name, clock=timeline)


def test_it_goes_to_one_holder_at_a_time(client, timeline):
    a, b = lease(client, timeline, "a"), lease(client, timeline, "b")
    assert a.hold() and not b.hold()
    assert a.hold()  # renewed
    assert a.valid() and not b.valid()
    assert b.holder() == "a"


def test_a_holder_trusts_it_until_a_fifth_of_the_lease_before_it_could_expire(client, timeline):
    a = lease(client, timeline, "a")
    a.hold()
    timeline.advance(79.9)
    assert a.valid()
    timeline.advance(0.1)
    assert not a.valid()  # 80 s after the renewal was asked; the key lives 20 s more
    assert client.pttl(LEASE_KEY) > 19_000


def test_a_standby_takes_it_once_the_holder_stops_renewing_and_the_holder_learns_it(
    client, timeline
):
    a, b = lease(client, timeline, "a"), lease(client, timeline, "b")
    a.hold()
    timeline.advance(99)
    assert not b.hold()  # not expired yet
    timeline.advance(1)
    assert b.hold() and b.valid()
    # The holder resumed (SIGCONT): its clock ran on, it does not trust its lease, and asking
    # Redis tells it another holds it.
    assert not a.valid()
    assert not a.hold()
    assert not a.valid()


def test_only_the_holder_releases_it_and_a_release_hands_it_over_at_once(client, timeline):
    a, b = lease(client, timeline, "a"), lease(client, timeline, "b")
    a.hold()
    b.release()
    assert b.holder() == "a"
    a.release()
    assert not a.valid()
    assert b.hold()


def test_only_the_holder_records_last_runs(client, timeline):
    a, b = lease(client, timeline, "a"), lease(client, timeline, "b")
    a.hold()
    assert a.record_run("tick", 12.5)
    assert not b.record_run("tick", 99.0)
    assert b.last_runs() == {"tick": 12.5}


class Contenders(RuleBasedStateMachine):
    """Any interleaving of renewals, releases and time passing (pauses included: a contender
    simply does not act for a while): at no moment do two contenders trust the lease, and the
    one that does is the one Redis names."""

    def __init__(self):
        super().__init__()
        self.client = redis.Redis.from_url(settings.REDIS_URL)

    @initialize()
    def start(self):
        self.client.delete(LEASE_KEY, LAST_RUNS_KEY)
        self.timeline = Timeline(self.client)
        self.leases = [
            Lease(self.client, LEASE, owner=f"c{i}", clock=self.timeline) for i in range(3)
        ]

    @rule(i=st.integers(0, 2))
    def hold(self, i):
        self.leases[i].hold()

    @rule(i=st.integers(0, 2))
    def release(self, i):
        self.leases[i].release()

    @rule(seconds=st.floats(0, 120))
    def time_passes(self, seconds):
        self.timeline.advance(seconds)

    @invariant()
    def at_most_one_trusts_it(self):
        if not hasattr(self, "leases"):
            return
        trusting = [x.owner for x in self.leases if x.valid()]
        assert len(trusting) <= 1
        if trusting:
            assert self.client.get(LEASE_KEY) == trusting[0].encode()

    def teardown(self):
        self.client.close()


def test_no_two_contenders_ever_trust_the_lease_at_once():
    run_state_machine_as_test(
        Contenders,
        settings=hypothesis_settings(
            max_examples=60, stateful_step_count=30, deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )  # fmt: skip


# --- The scheduler ----------------------------------------------------------------------------


def beat_app(name: str, schedule: dict) -> Celery:
    """A Celery app of its own per beat, sending to a queue named after it, so the broker's
    queues say which beat sent what."""
    app = Celery(name, broker=settings.REDIS_URL, set_as_current=False)
    app.conf.update(beat_schedule=schedule, task_default_queue=f"beat-test-{name}")
    return app


TICK = {"tick": {"task": "beat-test.tick", "schedule": 0.05}}


def sent(client, name: str) -> int:
    return client.llen(f"beat-test-{name}")


@pytest.fixture
def schedulers(client, timeline):
    made = []

    def make(name: str, schedule=None) -> LeasedScheduler:
        made.append(
            LeasedScheduler(beat_app(name, schedule or TICK), lease=lease(client, timeline, name))
        )
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def run(*schedulers, seconds: float = 0.3, until=None) -> None:
    """Let these beats tick for a while of real time (the entries are due by the wall clock),
    or, given ``until``, until it holds (10 s at most: on a loaded machine a first send,
    which connects to the broker, took most of the 0.3 s)."""
    deadline = time.monotonic() + (10 if until else seconds)
    while time.monotonic() < deadline and not (until and until()):
        for s in schedulers:
            s.tick()
        time.sleep(0.01)


def test_only_the_beat_holding_the_lease_sends(client, timeline, schedulers):
    a, b = schedulers("a"), schedulers("b")
    run(a, b, until=lambda: sent(client, "a") >= 3)
    assert a.active and not b.active
    assert sent(client, "a") >= 3
    assert sent(client, "b") == 0


def test_a_standby_sends_once_the_holder_is_lost_and_the_holder_resumed_sends_nothing(
    client, timeline, schedulers
):
    a, b = schedulers("a"), schedulers("b")
    run(a, b)
    timeline.advance(LEASE)  # a stopped ticking (killed, or SIGSTOP) for a whole lease
    run(b, until=lambda: sent(client, "b") >= 3)
    assert b.active and sent(client, "b") >= 3
    before = sent(client, "a")
    run(a, b)  # a resumed (SIGCONT)
    assert not a.active
    assert sent(client, "a") == before


def test_the_fence_stops_a_send_the_holder_is_no_longer_sure_of(client, timeline, schedulers):
    a = schedulers("a")
    run(a)
    before = sent(client, "a")
    timeline.advance(80)  # paused past its trust between the tick's look and the send
    a.apply_entry(a.schedule["tick"], producer=a.producer)
    assert sent(client, "a") == before
    assert not a.active


def test_a_beat_that_stops_hands_the_lease_over_at_once(client, timeline, schedulers):
    a, b = schedulers("a"), schedulers("b")
    run(a, b)
    a.close()  # SIGTERM: celery beat closes its scheduler
    b.tick()
    assert b.active


@pytest.mark.parametrize(("ran_ago", "sends"), [(3599.5, True), (60, False)])
def test_a_beat_taking_over_goes_on_from_the_last_runs_its_predecessor_recorded(
    client, timeline, schedulers, ran_ago, sends
):
    """An hourly entry the previous holder last ran almost an hour ago runs soon after the
    takeover, not an hour after it; one it ran a minute ago is not run again."""
    client.hset(LAST_RUNS_KEY, "hourly", time.time() - ran_ago)
    b = schedulers("b", {"hourly": {"task": "beat-test.hourly", "schedule": 3600.0}})
    run(b, seconds=1.0)
    assert b.active
    assert sent(client, "b") == (1 if sends else 0)
    assert datetime.fromtimestamp(float(client.hget(LAST_RUNS_KEY, "hourly")), UTC) <= (
        datetime.now(UTC)
    )


def test_the_portal_runs_the_leased_scheduler_with_redis_and_celerys_own_without(tmp_path):
    assert settings.REDIS_URL  # the suite runs on Redis
    assert settings.CELERY_BEAT_SCHEDULER == "portal.beat:LeasedScheduler"
    assert settings.BEAT_LEASE_SECONDS == 5.0
    assert beat.POLL_SECONDS == 0.5
    # The embedded mode (no REDIS_URL): what `celery -A portal beat` would load there.
    code = "from portal.celery import app; print(app.conf.beat_scheduler)"
    env = {"PATH": os.environ["PATH"], "PORTAL_ENV_FILE": "", "DEBUG": "true"}
    embedded = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=settings.BASE_DIR, env={**env, "PORTAL_VAR_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert embedded.stdout.split()[-1] == "celery.beat:PersistentScheduler"

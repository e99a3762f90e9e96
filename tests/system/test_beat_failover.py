"""Two beats, one active (issue 23, item 4), on real processes: PostgreSQL, Redis, a dispatcher
worker, a probe worker and two `celery beat`, checks every 8 s against a local HTTP server.

The active beat is stopped (SIGSTOP: alive but stuck), the standby takes over; the stopped one
is resumed and must send nothing (it stands by: the fence); then the new active one is killed
(SIGKILL) and the first takes over again. Throughout, checks go on: every due slot of every
check has its one result (none missed, none skipped), the target saw exactly one request per
result (no slot probed twice -- the results' key, check and due time, would hide a second
probe, the server does not), and the longest wait between two probes of a check stays under
an interval plus the lease plus a second.
"""

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from werkzeug import Response

from healthchecks.models import CheckResult
from healthchecks.status import ErrorCode
from portal.beat import LEASE_KEY
from tests.conftest import database_url
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.serial]
INTERVAL = 8
LEASE = settings.BEAT_LEASE_SECONDS  # the default, 5 s: the beats run with it
CHECKS = 3
NOT_PROBED = (ErrorCode.MISSED, ErrorCode.SKIPPED)


class Beat:
    """One `celery beat` process, its log in a file."""

    def __init__(self, log_path):
        self.log_path = log_path
        env = {
            **os.environ, "PORTAL_ENV_FILE": "", "DEBUG": "true", "DATABASE_URL": database_url(),
            "LOG_FORMAT": "json", "LOG_LEVEL": "info",
        }  # fmt: skip
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "portal", "beat", "--pidfile="],
                cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self, since: int = 0) -> str:
        return self.log_path.read_text()[since:]

    def signal(self, sig) -> None:
        os.killpg(self.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def beats(tmp_path):
    started = [Beat(tmp_path / "beat-a.log"), Beat(tmp_path / "beat-b.log")]
    yield started
    for beat in started:
        beat.stop()


class Target:
    """Records when each check's path was requested."""

    def __init__(self, server):
        self.server = server
        self.seen: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        server.expect_request(re.compile(r"/c\d+")).respond_with_handler(self.answer)

    def answer(self, request):
        with self.lock:
            self.seen[request.path].append(time.time())
        return Response("ok")


def holder_pid(client) -> int | None:
    value = client.get(LEASE_KEY)
    return int(value.decode().split(":")[1]) if value else None


def wait_for(condition, timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held, polled every 50 ms."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def results(check) -> list[CheckResult]:
    return list(CheckResult.objects.filter(health_check=check).order_by("at"))


def test_a_standby_beat_takes_over_from_a_stopped_and_from_a_killed_one_without_a_gap_or_a_double(
    http_servers, start_worker, beats
):
    client = redis.Redis.from_url(settings.REDIS_URL)
    with http_servers.borrow() as server:
        target = Target(server)
        service = ServiceFactory(name="steady")
        now = timezone.now()
        checks = [
            make_check(service, name=f"c{i}", interval=INTERVAL, target=server.url_for(f"/c{i}"),
                       next_due_at=now + timedelta(seconds=i * INTERVAL / CHECKS))
            for i in range(CHECKS)
        ]  # fmt: skip
        start_worker(["dispatch"])
        start_worker(["probes", "celery"])
        wait_for(lambda: all(len(results(c)) >= 2 for c in checks), 120, "steady results")
        steady_from = max(results(c)[-1].at for c in checks)
        first = next(b for b in beats if b.pid == holder_pid(client))
        second = next(b for b in beats if b is not first)

        time.sleep(INTERVAL / 2)
        first.signal(signal.SIGSTOP)  # alive, but stuck
        took_over_from_stopped = wait_for(
            lambda: holder_pid(client) == second.pid, LEASE + 3, "takeover from a stopped beat"
        )
        time.sleep(INTERVAL)
        resumed_at = len(first.log())
        first.signal(signal.SIGCONT)
        time.sleep(INTERVAL / 2)
        after_resume = first.log(resumed_at)
        assert "beat standing by" in after_resume
        assert "Sending due task" not in after_resume  # fenced: nothing sent on resuming

        second.signal(signal.SIGKILL)
        took_over_from_killed = wait_for(
            lambda: holder_pid(client) == first.pid, LEASE + 3, "takeover from a killed beat"
        )
        time.sleep(1.5 * INTERVAL)
        first.stop()
        time.sleep(settings.HEALTH_DISPATCH_LOOKAHEAD + 4)  # what was claimed is recorded
        seen = {path: list(times) for path, times in target.seen.items()}

    longest = {}
    for check in checks:
        rows = results(check)
        # Before the workers were up the first slot may have waited past its interval: missed.
        probed = [r for r in rows if r.error_code not in NOT_PROBED]
        assert len(seen[f"/{check.name}"]) == len(probed), "a slot probed twice (or lost)"
        steady = [r for r in rows if r.at >= steady_from]
        assert [(r.at, r.error_code) for r in steady if r.error_code in NOT_PROBED] == []
        slots = [r.at for r in steady]
        assert {b - a for a, b in itertools.pairwise(slots)} == {timedelta(seconds=INTERVAL)}
        probes = [t for t in seen[f"/{check.name}"] if t >= steady_from.timestamp()]
        longest[check.name] = max(b - a for a, b in itertools.pairwise(probes))
    print(
        f"takeover: {took_over_from_stopped:.2f} s from the stopped beat, "
        f"{took_over_from_killed:.2f} s from the killed one; longest wait between probes: "
        + ", ".join(f"{name} {gap:.2f} s" for name, gap in longest.items())
    )
    assert took_over_from_stopped <= LEASE + 1.5 and took_over_from_killed <= LEASE + 1.5
    assert max(longest.values()) <= INTERVAL + LEASE + 1  # under two intervals
    client.close()

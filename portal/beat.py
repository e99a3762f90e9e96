"""Beat without a single point of failure: one active, the others standing by on a lease.

Beat sends the fixed housekeeping (the dispatcher's tick every second, the automation's,
rollups, predictions, pruning...). One beat is a point of failure; two sending together would
double every tick. So every beat runs ``LeasedScheduler``: the one holding the lease -- a Redis
key with a time to live of ``BEAT_LEASE_SECONDS`` -- sends, the others ask for it every
``POLL_SECONDS``. The holder renews it every fifth of the lease. Killed or stuck, it renews no
more, the key expires and a standby takes it at its next poll: at most ``BEAT_LEASE_SECONDS``
+ ``POLL_SECONDS`` after the holder's loss (at least four fifths of the lease).

Fencing. A beat trusts its lease only until its own monotonic clock says the key might have
expired -- the moment it *asked* for the renewal, plus the lease, less a fifth as a margin --
and looks at that before each message it sends. A beat stopped (SIGSTOP, a frozen VM, a long
pause) and resumed finds the time gone, asks Redis, learns that another holds the lease, and
stands by without sending anything. Only a pause of more than the margin (a second by
default) falling between that look and the broker's write could still let one message out
late; what each task does when that happens is in docs/decisions.md.

The entries' last run times are kept beside the lease, written by the holder only, so a beat
taking over goes on where the last one stopped: nothing due is sent again at once, and the
hourly pruning is not put off by an hour at each change of hands.

Embedded mode (no Redis: ``make run`` without REDIS_URL) runs Celery's own scheduler, one beat.
"""

import contextlib
import os
import socket
import time
import uuid
from datetime import UTC, datetime

import redis
import structlog
from celery.beat import Scheduler
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = structlog.get_logger(__name__)

LEASE_KEY = "portal:beat:lease"
LAST_RUNS_KEY = "portal:beat:last-runs"
POLL_SECONDS = 0.5  # how often a standby asks for the lease
RENEW_SHARE = 0.2  # the holder renews every fifth of the lease ...
MARGIN_SHARE = 0.2  # ... and trusts it until a fifth before it could expire

# Take the lease when nobody holds it, renew it when we do; 0 when another holds it.
_HOLD = """
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# An entry's last run, written only by the holder (a beat that lost the lease writes nothing).
_RECORD = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def default_owner() -> str:
    """Who holds the lease, as an operator reads it in Redis: host, process, and a random part
    (a restarted process may get the same pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A lease in Redis that one owner holds at a time, trusted locally on a monotonic clock."""

    def __init__(self, client: redis.Redis, seconds: float, *, owner=None, clock=time.monotonic):
        self.client = client
        self.seconds = seconds
        self.owner = owner or default_owner()
        self.clock = clock
        self.margin = seconds * MARGIN_SHARE
        self.trusted_until = float("-inf")
        self._hold = client.register_script(_HOLD)
        self._record = client.register_script(_RECORD)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_settings(cls) -> "Lease":
        if not settings.REDIS_URL:
            raise ImproperlyConfigured("the beat lease needs REDIS_URL (embedded mode: one beat)")
        seconds = settings.BEAT_LEASE_SECONDS
        # A Redis that does not answer must not hold a tick past the margin.
        timeout = min(0.5, seconds * MARGIN_SHARE / 2)
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return cls(client, seconds)

    def hold(self) -> bool:
        """Take the lease if free, renew it if ours; whether we hold it now. When Redis does not
        answer, the lease is trusted as long as the last renewal allows."""
        asked_at = self.clock()
        try:
            held = bool(self._hold(keys=[LEASE_KEY], args=[self.owner, round(self.seconds * 1000)]))
        except redis.RedisError as exc:
            log.warning("beat lease not renewed: Redis did not answer", error=str(exc))
            return self.valid()
        # The key expires ``seconds`` after Redis set it, which is after we asked: trusting it
        # until ``asked_at + seconds - margin`` never outlasts it.
        self.trusted_until = asked_at + self.seconds - self.margin if held else float("-inf")
        return held

    def valid(self) -> bool:
        """Whether we may act as the holder now (no I/O)."""
        return self.clock() < self.trusted_until

    def holder(self) -> str | None:
        value = self.client.get(LEASE_KEY)
        return _text(value) if value is not None else None

    def record_run(self, name: str, at: float) -> bool:
        """Keep an entry's last run for whoever holds the lease next; False if another holds it
        (then we lost it; a Redis error says nothing either way)."""
        try:
            return bool(self._record(keys=[LEASE_KEY, LAST_RUNS_KEY], args=[self.owner, name, at]))
        except redis.RedisError as exc:
            log.warning("beat run not recorded: Redis did not answer", error=str(exc))
            return True

    def last_runs(self) -> dict[str, float]:
        try:
            stored = self.client.hgetall(LAST_RUNS_KEY)
        except redis.RedisError:
            return {}
        return {_text(name): float(at) for name, at in stored.items()}

    def release(self) -> None:
        """Hand the lease over at once (a beat stopping): a standby takes it at its next poll."""
        self.trusted_until = float("-inf")
        with contextlib.suppress(redis.RedisError):  # then it expires by itself
            self._release(keys=[LEASE_KEY], args=[self.owner])


class LeasedScheduler(Scheduler):
    """Celery's in-memory scheduler, sending only while it holds the lease."""

    def __init__(self, app, *args, lease: Lease | None = None, **kwargs):
        self.lease = lease or Lease.from_settings()
        self.active = False
        self.renew_seconds = self.lease.seconds * RENEW_SHARE
        self.poll_seconds = min(POLL_SECONDS, self.renew_seconds)
        self._renew_at = float("-inf")
        super().__init__(app, *args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        if self.lease.clock() >= self._renew_at or not self.lease.valid():
            self._renew()
        if not self.active:
            return self.poll_seconds
        delay = super().tick(*args, **kwargs)
        return min(delay, max(0.0, self._renew_at - self.lease.clock()))

    def _renew(self) -> None:
        held = self.lease.hold()
        self._renew_at = self.lease.clock() + (self.renew_seconds if held else self.poll_seconds)
        if held and not self.active:
            self._take_over()
        elif not held and self.active:
            self._stand_by("another beat holds the lease")

    def _take_over(self) -> None:
        """Become the active beat, going on from the last runs the previous holder recorded."""
        runs = self.lease.last_runs()
        for name, entry in self.schedule.items():
            if name in runs:
                entry.last_run_at = datetime.fromtimestamp(runs[name], UTC)
        self._heap = None  # rebuilt from those times at the next tick
        self.active = True
        log.info("beat active: holding the lease", owner=self.lease.owner)

    def _stand_by(self, reason: str) -> None:
        self.active = False
        self.lease.trusted_until = float("-inf")
        log.warning("beat standing by: lease lost", owner=self.lease.owner, reason=reason)

    def apply_entry(self, entry, producer=None) -> None:
        # The fence: nothing leaves a beat that cannot be sure it still holds the lease.
        if not self.lease.valid():
            self._stand_by(f"not sure of the lease before sending {entry.name}")
            return
        super().apply_entry(entry, producer=producer)
        if not self.lease.record_run(entry.name, time.time()):
            self._stand_by("another beat holds the lease")

    def close(self) -> None:
        if self.active:
            self.lease.release()
            self.active = False
        super().close()


def _text(value: bytes | str) -> str:
    """A client made with decode_responses gives str, the portal's gives bytes."""
    return value.decode() if isinstance(value, bytes) else value

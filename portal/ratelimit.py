"""The adaptive rate limiter (the seed's ``AdaptiveRateLimiter(default_rate=100,
burst_rate=200, adaptive_enabled=True)``), ahead of the views.

Each request falls in a route class (API reads, API writes, login, heartbeat pings, /health/
probes, pages), each with its rate per minute and its burst (``RATE_LIMITS``). A client is
its API token (on the API, and only a token that exists: a made-up one is its address's),
else its logged-in user, else its address (``X-Forwarded-For`` counts only when the peer is
one of ``TRUSTED_PROXIES``). The budget is a GCRA token bucket kept in Redis
and checked by one Lua script -- one round trip, atomic, so every web process shares it.

Adaptive: ``factor`` (1 = the configured rates) is set by the health side every 15 s
(healthchecks.watch.stress): when the portal is under stress it halves, step by step down to
``RATE_LIMIT_FLOOR``, for the lowest classes only (pages and API reads), and doubles back
once the stress passes. Probes, pings, logins and writes keep their rates. Stress is the
portal's own trouble, never an answer it gives on purpose: the middleware counts an answer
as a fault only when it was marked one (``mark_fault``: an unhandled error's 500, the
database unavailable) -- a health gate's 503 for an unusable service, a demo target's
failure, a 4xx are the portal working -- plus answers slower than RATE_LIMIT_SLOW_SECONDS,
except those slow on purpose (``mark_deliberate``: a demo target's sleep, a check run by hand
waiting on its target).

Redis unreachable (or the embedded mode, which has none): the same buckets per process, and
one log line -- never "no limit", never a 500. The counts are then this process's too, which
no beat task can read: each process adapts its own factor from them (``adapt_here_if_due``,
through the hook the health side registers), every 15 s as beat would.
"""

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
import structlog
from django.conf import settings
from django.db import DatabaseError
from redis.commands.core import Script

from portal import tokens
from portal.requestcontext import client_address

log = structlog.get_logger(__name__)

FACTOR_KEY = "ratelimit:factor"
ADAPTIVE = ("pages", "api_read")  # the lowest classes: what tightens under stress
TOKEN_CLASSES = frozenset({"api_read", "api_write", "health"})  # where a token is a credential
# GCRA: the bucket's theoretical arrival time (ms) per key. KEYS[1] the bucket, KEYS[2] the
# factor; ARGV now_ms, rate per minute, burst, adaptive (1/0). Returns allowed, remaining,
# retry_after_ms, reset_ms, the rate used.
_GCRA = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
if ARGV[4] == '1' then
  local factor = tonumber(redis.call('GET', KEYS[2]) or '1') or 1
  rate = math.max(1, math.floor(rate * factor))
  burst = math.max(1, math.floor(burst * factor))
end
local interval = 60000 / rate
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
if tat - now + interval > tolerance then
  return {0, 0, math.ceil(tat - now + interval - tolerance), math.ceil(tat - now), rate}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, remaining, 0, math.ceil(new_tat - now), rate}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int  # requests per minute, as applied now
    remaining: int
    retry_after: float  # seconds (0 when allowed)
    reset: float  # seconds until the bucket is full again


def route_class(path: str, method: str) -> str:
    """Which budget a request spends."""
    if path.startswith("/health/heartbeat/"):
        return "heartbeat"
    if path == "/health" or path.startswith("/health/") or path == "/metrics":
        return "health"
    if path.startswith("/demo/"):
        # `make run`'s targets are there to be probed: its own checks, all from one address,
        # spent the pages' 300 a minute and failed with 429 beyond about 50 at 10 s.
        return "health"
    if path.startswith("/accounts/login") or path.startswith("/admin/login"):
        return "login"
    if path.startswith("/api/"):
        return "api_read" if method in ("GET", "HEAD", "OPTIONS") else "api_write"
    return "pages"


def client_key(request, kind: str = "") -> str:
    """A known token (by its digest, never the secret), else a user, else an address. A
    token counts only where it is a credential (the API, /health/ writes), and only if some
    token has it: a secret nobody holds is no client of its own, or a random one per request
    would buy a fresh budget each time (its caller is its address). A heartbeat ping is its
    check's (the token in its URL): many services may ping from one address."""
    if kind == "heartbeat":
        return "ping:" + hashlib.sha256(request.path.encode()).hexdigest()[:24]
    if kind in TOKEN_CLASSES:
        token = _known_token(request)
        if token is not None:
            return f"token:{token.secret_hash[:24]}"
    user = getattr(request, "user", None)
    try:
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}"
    except DatabaseError:
        pass  # the session cannot be read (a database outage): the views will say so
    return f"addr:{client_address(request.META)}"


def _known_token(request):
    """The token the request's bearer secret belongs to (expired ones too), or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() != "bearer " or not header[7:].strip():
        return None
    try:
        return tokens.token_of(request, header[7:].strip())
    except DatabaseError:
        return None  # the database is out: counted by address meanwhile


def known_as(client: str) -> str:
    """A client key as the security events name the same caller elsewhere: a token by its
    name (its key holds the start of the secret's digest, which is what is stored), a person
    by their user name; a caller known only by its address is anonymous (the event holds the
    address). Read once a minute per client, at most: when its counted row is made."""
    from django.contrib.auth import get_user_model

    from portal.models import ApiToken

    kind, _, value = client.partition(":")
    try:
        if kind == "token":
            name = ApiToken.objects.filter(secret_hash__startswith=value).values_list(
                "name", flat=True
            )
            return f"token:{name.first() or 'unknown'}"
        if kind == "user":
            user = get_user_model().objects.filter(pk=value).first()
            return f"user:{user.get_username()}" if user else client
    except (DatabaseError, ValueError):
        pass
    return "anonymous" if kind == "addr" else client


class LocalBuckets:
    """The same GCRA per process, for when Redis cannot be asked."""

    def __init__(self):
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: int, burst: int, now_ms: float) -> Verdict:
        interval = 60000 / rate
        tolerance = interval * burst
        with self._lock:
            if len(self._tat) > 100_000:  # forget the idle ones rather than grow forever
                self._tat = {k: v for k, v in self._tat.items() if v > now_ms}
            tat = max(self._tat.get(key, now_ms), now_ms)
            if tat - now_ms + interval > tolerance:
                wait = tat - now_ms + interval - tolerance
                return Verdict(False, rate, 0, wait / 1000, (tat - now_ms) / 1000)
            self._tat[key] = tat + interval
            remaining = int((tolerance - (tat + interval - now_ms)) // interval)
            return Verdict(True, rate, remaining, 0.0, (tat + interval - now_ms) / 1000)


FAULT = "portal_fault"  # the attribute mark_fault sets on a response
ADAPT_SECONDS = 15.0  # how often the factor follows the stress (beat's adapt-rate-limits too)
_adapters: list[Callable[[], float]] = []


def mark_fault(response):
    """Mark an answer as a genuine fault of the portal (an unhandled error, its database
    unavailable): the stress signal counts these, and never an answer the portal gives on
    purpose, whatever its status -- a health gate's documented 503 is the portal working."""
    setattr(response, FAULT, True)
    return response


def is_fault(response) -> bool:
    return bool(getattr(response, FAULT, False))


DELIBERATE = "portal_deliberate"  # the attribute mark_deliberate sets on a request


def mark_deliberate(request):
    """Mark a request whose answer is slow on purpose -- a demo target that sleeps, a check
    run by hand that waits on its target: its time says nothing of the portal's load, so the
    stress signal does not count it slow (a fault it still counts)."""
    setattr(request, DELIBERATE, True)
    return request


def is_deliberate(request) -> bool:
    return bool(getattr(request, DELIBERATE, False))


def register_adapter(adapt: Callable[[], float]) -> None:
    """The health side's one adaptation step (healthchecks.watch.stress.adapt), which a process
    counting on its own runs itself (the core cannot import it)."""
    if adapt not in _adapters:
        _adapters.append(adapt)


class Limiter:
    def __init__(self):
        self.local = LocalBuckets()
        self._client: redis.Redis | None = None
        self._script: Script | None = None  # the bucket's Lua script, with the client
        self._warned = False
        self._local_factor = 1.0
        self._local_stats: dict[int, list[int]] = {}
        self._counting_here = False  # the last answer was counted in this process
        self._adapted_at = 0.0
        self._adapt_failed_logged = False

    def _redis(self):
        if not settings.REDIS_URL:
            return None
        if self._client is None:
            self._client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25
            )
            self._script = self._client.register_script(_GCRA)
        return self._client

    def check(self, request) -> tuple[str, Verdict | None]:
        kind = route_class(request.path, request.method)
        limits = settings.RATE_LIMITS.get(kind)
        if not limits:
            return kind, None
        rate, burst = limits
        key = f"ratelimit:{kind}:{client_key(request, kind)}"
        now_ms = time.time() * 1000
        adaptive = kind in ADAPTIVE
        client = self._redis()
        if client is not None and self._script is not None:
            try:
                allowed, remaining, retry_ms, reset_ms, used = self._script(
                    keys=[key, FACTOR_KEY], args=[int(now_ms), rate, burst, int(adaptive)]
                )
                self._warned = False
                return kind, Verdict(
                    bool(allowed), int(used), int(remaining), retry_ms / 1000, reset_ms / 1000
                )
            except redis.RedisError as exc:
                if not self._warned:
                    log.warning("rate limits per process: Redis unreachable", error=str(exc))
                    self._warned = True
        if adaptive and self._local_factor < 1:
            rate = max(1, int(rate * self._local_factor))
            burst = max(1, int(burst * self._local_factor))
        return kind, self.local.take(key, rate, burst, now_ms)

    def factor(self) -> float:
        client = self._redis()
        if client is None:
            return self._local_factor
        try:
            value = client.get(FACTOR_KEY)
        except redis.RedisError:
            return self._local_factor
        return float(value) if value else 1.0

    def set_factor(self, value: float) -> None:
        value = min(1.0, max(settings.RATE_LIMIT_FLOOR, value))
        self._local_factor = value
        client = self._redis()
        if client is not None:
            with contextlib.suppress(redis.RedisError):
                client.set(FACTOR_KEY, f"{value:.4f}", ex=300)  # stale stress expires

    # --- the stress signal: requests, genuine faults and slow answers per minute ---------

    def record(self, fault: bool, seconds: float, deliberate: bool = False) -> None:
        """Count one answer: every answer, the faults (``is_fault``), the slow ones (not
        those slow on purpose: ``mark_deliberate``)."""
        minute = int(time.time() // 60)
        error = bool(fault)
        slow = not deliberate and seconds >= settings.RATE_LIMIT_SLOW_SECONDS
        client = self._redis()
        if client is not None:
            try:
                key = f"ratelimit:stats:{minute}"
                pipe = client.pipeline(transaction=False)
                pipe.hincrby(key, "n", 1)
                if error:
                    pipe.hincrby(key, "err", 1)
                if slow:
                    pipe.hincrby(key, "slow", 1)
                pipe.expire(key, 300)
                pipe.execute()
                self._counting_here = False
                return
            except redis.RedisError:
                pass
        with self.local._lock:
            self._counting_here = True
            counts = self._local_stats.setdefault(minute, [0, 0, 0])
            counts[0] += 1
            counts[1] += error
            counts[2] += slow
            for old in [m for m in self._local_stats if m < minute - 3]:
                del self._local_stats[old]

    def adapt_here_if_due(self) -> None:
        """Where this process counts its answers alone (no Redis: the embedded mode; Redis
        unreachable), no beat task sees them: run the adaptation step here, at most every
        ADAPT_SECONDS. With Redis, beat does it for every process and this does nothing."""
        if not self._counting_here or not _adapters:
            return
        now = time.time()
        with self.local._lock:
            if self._adapted_at <= now < self._adapted_at + ADAPT_SECONDS:
                return
            self._adapted_at = now
        for adapt in _adapters:
            try:
                adapt()
            except DatabaseError as exc:  # the backend's status cannot be read: next time
                if not self._adapt_failed_logged:
                    self._adapt_failed_logged = True
                    log.warning("rate limits not adapted: database unavailable", error=str(exc))

    def last_minute(self) -> tuple[int, int, int]:
        """(requests, genuine faults, slow answers) of the last full minute."""
        minute = int(time.time() // 60) - 1
        client = self._redis()
        if client is not None:
            try:
                row = client.hgetall(f"ratelimit:stats:{minute}")
                n, faults, slow = (int(row.get(k.encode(), 0)) for k in ("n", "err", "slow"))
                return n, faults, slow
            except redis.RedisError:
                pass
        n, faults, slow = self._local_stats.get(minute, [0, 0, 0])
        return n, faults, slow


LIMITER = Limiter()


def headers(verdict: Verdict) -> dict[str, str]:
    """The IETF draft's RateLimit-* fields (and Retry-After on a refusal)."""
    values = {
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(max(0, verdict.remaining)),
        "RateLimit-Reset": str(max(0, round(verdict.reset))),
    }
    if not verdict.allowed:
        values["Retry-After"] = str(max(1, round(verdict.retry_after + 0.499)))
    return values

"""Security events (portal.models.SecurityEvent): one function to record them, and the
login throttle.

Recording never fails the request it describes: a database that cannot take the event is
logged instead. Refusals are recorded by the error handlers, once the view's transactions
have unwound, so a rolled-back write does not take its refusal's event with it.

Refusals are counted, not stored one row per request: the same kind from the same address
and caller within a minute (a fixed window) adds one to that row's ``count`` and moves its
``last_at`` -- one UPDATE of one row, so a flood (400 requests with random bearer tokens,
a client past its rate limit) is a number on a row, not 400 rows. What is done rather than
refused (secret reads, tokens made and revoked) stays one row each.

Login throttle (below): failed logins lock the pair of the name and where they come from
(the address, or a browser the name signed in from before), never the name or the address
whole -- so that nobody can lock the owner out by guessing at their name; each refusal is an
event. The rate limiter's login class already slows attempts to a few a minute.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from portal.models import SecurityEvent
from portal.requestcontext import client_address, current_client_ip, current_request_id

log = structlog.get_logger(__name__)
# Where the throttle counts while Redis cannot be asked: this process alone, as the rate
# limiter does (portal.ratelimit) -- never no throttle, never a 500 at the login form.
_LOCAL = LocMemCache("portal-security", {})
_redis_down_logged = False


def _shared(operation):
    """``operation(cache)`` on the shared cache, or on this process's if Redis is down."""
    global _redis_down_logged
    try:
        return operation(cache)
    except (RedisError, OSError) as exc:
        if not _redis_down_logged:
            _redis_down_logged = True
            log.warning(
                "login throttle counts per process: the cache is unreachable", error=str(exc)
            )
        return operation(_LOCAL)


Kind = SecurityEvent.Kind
# The refusals anyone can repeat at will: counted on one row per kind, address, caller and
# WINDOW_SECONDS.
COUNTED = frozenset(
    {
        Kind.LOGIN_FAILED,
        Kind.LOGIN_THROTTLED,
        Kind.TOKEN_INVALID,
        Kind.TOKEN_EXPIRED,
        Kind.PERMISSION_DENIED,
        Kind.RATE_LIMITED,
        Kind.SIGN_IN_REFUSED,
    }
)
WINDOW_SECONDS = 60


def events(kind: str | None = None, who: str | None = None, since=None):
    """The events, newest first: of a kind, of a caller (``who`` as recorded), seen since a
    moment -- a counted event first seen before it and seen again since included (the API's
    list and the audit page's security tab)."""
    rows = SecurityEvent.objects.all()
    if kind:
        rows = rows.filter(kind=kind)
    if who:
        rows = rows.filter(who=who)
    if since:
        # A counted row spans one window at most, so `at` (indexed; last_at is not, or every
        # count would rewrite an index) narrows the search.
        window = timedelta(seconds=WINDOW_SECONDS)
        try:
            first = since - window
        except OverflowError:  # since the year 1: everything
            first = since
        rows = rows.filter(at__gte=first, last_at__gte=since)
    return rows.order_by("-at", "-id")


def operation_of(request) -> str:
    return f"{request.method} {request.path}"[:300] if request is not None else ""


def record(kind: str, who, operation: str, outcome: str, *, caller: str = "", **detail) -> None:
    """Record one event (who: a principal, or the user name a login tried; a function is
    called only when a row is made). A refusal adds to the row of its kind, address and
    ``caller`` (``who`` unless given) of this minute, if there is one."""
    try:
        if kind in COUNTED:
            _count(kind, who, operation, outcome, caller or str(who), detail)
        else:
            _row(kind, who, operation, outcome, detail).save()
    except DatabaseError as exc:
        log.warning("security event not stored", kind=kind, error=str(exc))


def _row(kind, who, operation, outcome, detail, **fields) -> SecurityEvent:
    return SecurityEvent(
        kind=kind,
        who=str((who() if callable(who) else who) or "anonymous")[:200],
        client_ip=current_client_ip() or None,
        operation=operation[:300],
        outcome=outcome,
        detail=detail,
        request_id=current_request_id(),
        **fields,
    )


def tally_of(kind: str, address: str, caller: str, at) -> str:
    """The name of the row a refusal counts on: its kind, address, caller and window."""
    window = int(at.timestamp() // WINDOW_SECONDS)
    return hashlib.sha256(f"{kind}\n{address}\n{caller}\n{window}".encode()).hexdigest()


def _count(kind, who, operation, outcome, caller: str, detail) -> None:
    """One more on this window's row; the first of the window makes it. Two processes
    making it at once: the unique tally lets one insert, the other counts on its row."""
    now = timezone.now()
    tally = tally_of(kind, current_client_ip(), caller, now)
    seen = SecurityEvent.objects.filter(tally=tally)
    if seen.update(count=F("count") + 1, last_at=now):
        return
    row = _row(kind, who, operation, outcome, detail, at=now, last_at=now, tally=tally)
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        seen.update(count=F("count") + 1, last_at=now)


# --- login throttle ------------------------------------------------------------------------
#
# Failed logins are counted per (name, where) pair: where is the address, or the browser when
# it holds this name's device cookie (one a sign-in as that name gave it). Past
# LOGIN_MAX_FAILURES_USER failures within LOGIN_FAILURE_WINDOW the pair is refused for
# LOGIN_LOCK_SECONDS, the right password included: the guesser stays locked, the owner signs
# in from anywhere else at once. A name is never locked whole, nor an address. Failures
# without a device cookie are counted per address too, and the addresses failing on a name
# per name: a name failing from LOGIN_MAX_FAILURES_USER addresses (guessed from many) or an
# address with LOGIN_MAX_FAILURES_ADDRESS failures (guessing many names) is *strict* for
# LOGIN_LOCK_SECONDS: there a pair with a failure is refused and a failure locks its pair --
# one guess per pair instead of five -- while a right password from a pair with no failure
# still signs in, and a browser the name signed in from keeps its own count.
# Attempts refused neither count nor lengthen anything. docs/operating.md states the policy.

DEVICE_COOKIE = "portal_login_device"
DEVICE_DAYS = 365
_DEVICE_SALT = "portal.security.login-device"


@dataclass(frozen=True)
class LoginOrigin:
    """Where a login attempt comes from: the name tried (as counted: lower case), the
    client's address, and the id of the device cookie the browser holds for that name."""

    name: str
    address: str
    device: str = ""

    @property
    def pair(self) -> str:
        where = f"device:{self.device}" if self.device else f"addr:{self.address}"
        return f"login-failures:pair:{where}:{self.name}"

    @property
    def name_key(self) -> str:
        return f"login-failures:name:{self.name}"

    @property
    def address_key(self) -> str:
        return f"login-failures:addr:{self.address}"


def login_origin(request, username: str) -> LoginOrigin:
    """Counted in lower case, but a device cookie is the device of the name that signed in,
    exactly: Django's names are case-sensitive, and "Bob" signing in from fresh browsers
    must not mint devices counted apart for "bob" (issue 28, breaking trial)."""
    exact = str(username)[:150]
    name = exact.lower()
    if request is None:
        return LoginOrigin(name, "")
    device = _device_of(request.COOKIES.get(DEVICE_COOKIE, ""))
    return LoginOrigin(
        name,
        client_address(request.META),
        device[1] if device and device[0] == exact else "",
    )


def _device_of(cookie: str) -> tuple[str, str] | None:
    """The (name, device id) a device cookie holds, if the portal signed it and it is not
    older than DEVICE_DAYS."""
    if not cookie:
        return None
    try:
        value = signing.loads(cookie, salt=_DEVICE_SALT, max_age=DEVICE_DAYS * 86400)
        return str(value["n"]), str(value["d"])
    except (signing.BadSignature, KeyError, TypeError):
        return None


def login_refusal(origin: LoginOrigin) -> str:
    """Why this attempt is refused before its password is read ("" if it is not): its pair
    locked, or a pair with failures where the name or the address is strict."""
    return _shared(lambda store: _refusal(store, origin))


def _refusal(store, origin: LoginOrigin) -> str:
    if store.get(f"{origin.pair}:locked"):
        return "too many failed logins for this name from here"
    if origin.device or not store.get(origin.pair):
        return ""  # a browser the name signed in from, or a pair with no failure
    if store.get(f"{origin.name_key}:strict"):
        return "this name is being guessed: one failure per address"
    if store.get(f"{origin.address_key}:strict"):
        return "this address is guessing names: one failure per name"
    return ""


def login_failed(origin: LoginOrigin) -> None:
    _shared(lambda store: _count_failure(store, origin))


def _incr(store, key: str) -> int:
    """One more on a counter that lives LOGIN_FAILURE_WINDOW from its first count."""
    store.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr
        store.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)
        return 1


def _count_failure(store, origin: LoginOrigin) -> None:
    lock = settings.LOGIN_LOCK_SECONDS
    failures = _incr(store, origin.pair)
    locked = failures >= settings.LOGIN_MAX_FAILURES_USER
    if not origin.device:  # a browser the name signed in from is counted apart
        counted = [(origin.address_key, settings.LOGIN_MAX_FAILURES_ADDRESS)]
        if failures == 1:  # the name counts addresses failing on it, not their failures
            counted.append((origin.name_key, settings.LOGIN_MAX_FAILURES_USER))
        for key, limit in counted:
            if _incr(store, key) >= limit:
                store.add(f"{key}:strict", 1, timeout=lock)  # from when it is first met
        strict = (f"{origin.name_key}:strict", f"{origin.address_key}:strict")
        locked = locked or any(store.get(key) for key in strict)
    if locked:
        store.add(f"{origin.pair}:locked", 1, timeout=lock)  # never lengthened


def login_succeeded(request, username: str) -> None:
    """A sign-in: its pair's failures are forgiven, and the browser gets (or keeps) this
    name's device cookie, which the next response sets (LoginDeviceMiddleware)."""
    origin = login_origin(request, username)
    _shared(lambda store: store.delete(origin.pair))
    if request is not None:
        device = origin.device or secrets.token_hex(12)
        exact = str(username)[:150]
        request.login_device = signing.dumps({"n": exact, "d": device}, salt=_DEVICE_SALT)


def set_device_cookie(request, response) -> None:
    value = getattr(request, "login_device", None)
    if value:
        response.set_cookie(
            DEVICE_COOKIE,
            value,
            max_age=DEVICE_DAYS * 86400,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )

"""PostgreSQL as the portal uses it: connections that never wait for ever.

A server that stops answering -- a black-holed network, a frozen host, a stalled proxy --
says nothing, so neither the server's statement timeout nor the connect timeout ends the
wait, and TCP keepalives only probe an idle connection. Every round trip on a pooled
connection therefore has a client-side deadline (psycopg's own ``Connection.wait`` timeout):
past it the connection is dropped and the caller gets an ``OperationalError`` -- a 503
``database_unavailable`` in a request, a retry in a task -- instead of a worker held until
gunicorn or Celery kills it.

The deadline is ``DB_READ_TIMEOUT`` during a web request (a request's statements take
milliseconds), ``CHECK_SECONDS`` for the pool's check at checkout, and elsewhere (tasks,
commands) the server's own statement timeout plus ``DB_READ_TIMEOUT``, so a slow statement
is still the server's to cancel; ``migrate`` lifts it with the statement timeout
(portal.apps). A request that found the database unavailable once does not wait for it
again (code that carries on after a database error, as the rate limiter does, would
otherwise pay every timeout twice): ``base.DatabaseWrapper``, the engine, refuses at once.
Liveness never asks at all.
"""

import contextlib
import contextvars
import functools
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from django.conf import settings
from django.urls import reverse
from psycopg.abc import RV, PQGen
from psycopg.errors import _WaitTimeout  # what Connection.wait(timeout=...) raises
from psycopg_pool import ConnectionPool

# An empty round trip on a healthy server takes well under a millisecond, a few across
# regions: a second means the server is not answering.
CHECK_SECONDS = 1.0

_UNSET = object()
# The deadline of each round trip in this context: seconds, None for none, _UNSET for the
# process default.
_limit: contextvars.ContextVar[Any] = contextvars.ContextVar("db_round_trip_limit", default=_UNSET)
_lifted = False  # set while `migrate` runs without a statement timeout


class _Request:
    """What one request learnt about the database: why it is unavailable, once it is."""

    unavailable: str | None = None


_request: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "db_request", default=None
)
# When the pool's checkout in progress gives up (time.monotonic()), if one is.
_checkout_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "db_checkout_deadline", default=None
)


def round_trip_limit() -> float | None:
    """Seconds one round trip may wait for the server here; None: no limit."""
    limit = _limit.get()
    if limit is not _UNSET:
        return limit
    if _lifted:
        return None
    return settings.DB_STATEMENT_TIMEOUT + settings.DB_READ_TIMEOUT


@contextlib.contextmanager
def limited(seconds: float | None) -> Iterator[None]:
    """Every round trip made inside waits at most ``seconds`` (None: no limit)."""
    token = _limit.set(seconds)
    try:
        yield
    finally:
        _limit.reset(token)


@contextlib.contextmanager
def serving_request(*, reads_database: bool = True) -> Iterator[None]:
    """A web request: round trips within DB_READ_TIMEOUT, and the database asked for a
    connection at most until it has failed once -- or never, for a request that must not
    depend on it (liveness): whatever would read it on the way is refused at once."""
    scope = _Request()
    if not reads_database:
        scope.unavailable = "this request does not read the database"
    token = _request.set(scope)
    try:
        with limited(settings.DB_READ_TIMEOUT):
            yield
    finally:
        _request.reset(token)


def found_unavailable(reason: str) -> None:
    """Remember, for the rest of this request, that the database is not answering."""
    request = _request.get()
    if request is not None and request.unavailable is None:
        request.unavailable = reason


def known_unavailable() -> str | None:
    """Why this request already knows the database is unavailable, if it does."""
    request = _request.get()
    return request.unavailable if request is not None else None


def lift(lifted: bool) -> None:
    """No process-wide deadline while ``migrate`` rewrites tables without a statement
    timeout; back after it."""
    global _lifted
    _lifted = lifted


class BoundedConnection(psycopg.Connection):
    """The pool's connection class: each wait for the server ends at ``round_trip_limit()``.
    A connection that ran out of time is mid-protocol and closed at once (the server may
    still answer later; nobody may read that answer as the next statement's)."""

    def wait(
        self, gen: PQGen[RV], interval: float | None = None, timeout: float | None = None
    ) -> RV:
        more = {} if interval is None else {"interval": interval}  # else psycopg's own
        if timeout is not None:  # psycopg's own bounded waits (notifies, cancel) as they are
            return super().wait(gen, timeout=timeout, **more)
        limit = round_trip_limit()
        try:
            return super().wait(gen, timeout=limit, **more)
        except _WaitTimeout:
            self.pgconn.finish()
            reason = f"PostgreSQL did not answer within {limit:g} s; the connection was dropped"
            found_unavailable(reason)
            raise psycopg.OperationalError(reason) from None


@contextlib.contextmanager
def checking_out(seconds: float) -> Iterator[None]:
    """A checkout from the pool, which gives up after ``seconds``: its checks end by then."""
    token = _checkout_deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _checkout_deadline.reset(token)


def check_connection(conn: psycopg.Connection) -> None:
    """The pool's check of a connection at checkout (one empty round trip), within
    CHECK_SECONDS and the checkout's own deadline: a connection whose server went silent
    while it sat in the pool costs a second at most, and the pool tries the next one or a
    new one. Not a verdict on the database: the pool goes on looking until its timeout."""
    limit = CHECK_SECONDS
    if (deadline := _checkout_deadline.get()) is not None:
        limit = min(limit, deadline - time.monotonic())
        if limit <= 0:
            raise psycopg.OperationalError("no time left to check a pooled connection")
    token = _request.set(None)
    try:
        with limited(limit):
            ConnectionPool.check_connection(conn)
    finally:
        _request.reset(token)


class DatabaseTimeoutMiddleware:
    """A request's round trips to PostgreSQL wait DB_READ_TIMEOUT at most each, and once the
    database has failed it the request is not made to wait for it again: a server that does
    not answer costs a request seconds and a 503 (DatabaseUnavailableMiddleware). Liveness
    (``/health/``) never reaches the database, not even through the middleware before its
    view (a session, a bearer token the rate limiter looks up): it answers whatever the
    database does."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with serving_request(reads_database=request.path != _liveness_path()):
            return self.get_response(request)


@functools.cache
def _liveness_path() -> str:
    return reverse("liveness")

"""Probes: the only network I/O of the health-check engine.

``probe(spec, policy)`` runs one check and always returns a ``ProbeOutcome`` -- it never
raises for anything the target does (refuses, times out, answers garbage, answers forever):
the outcome says what went wrong. Probes are coroutines so a worker runs a whole batch
concurrently on one event loop.

INTERFACE (fixed; the implementation below fills it in):
    ProbeSpec, ProbeOutcome, async probe(spec, policy) -> ProbeOutcome

How a worker runs many probes: concurrently on one event loop, all sharing one ``Prober``,
which holds one aiohttp session whose connector never reuses a connection (each HTTP probe
opens a new TCP connection and, for https, does a full TLS handshake, as a real client would).
Either explicitly::

    async with Prober(NetworkPolicy.from_settings()) as prober:
        outcomes = await asyncio.gather(*(prober.probe(spec) for spec in specs))

or simply ``await probe(spec, policy)`` from many tasks: it uses a Prober shared per event loop
and policy, closed when the loop is shut down by ``asyncio.run()`` (a loop closed by hand
should use an explicit Prober instead). The caller bounds concurrency (e.g. a semaphore).

Every probe is bounded by ``spec.timeout`` as a whole (DNS, connect, TLS, redirects, body).
The network policy is applied after DNS resolution, on every redirect hop (see netpolicy).
Header values and passwords never appear in an outcome: outcomes are scrubbed of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import functools
import importlib
import inspect
import json
import math
import re
import socket
import ssl
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohappyeyeballs
import aiohttp
import structlog
from yarl import URL

from healthchecks.netpolicy import (
    HTTP_SCHEMES,
    Endpoint,
    NetworkPolicy,
    PolicyError,
    PolicyResolver,
    ResolveError,
    TargetError,
    check_url_endpoint,
    format_host_port,
    parse_host_port,
    parse_http_url,
    parse_postgres_dsn,
    parse_redis_url,
)
from healthchecks.status import ErrorCode, Status

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProbeSpec:
    check_id: int
    kind: str  # "http", "tcp", "postgres", "redis", "heartbeat", "python"
    target: str  # URL, "host:port", DSN (no password), redis URL, dotted path, or "" (heartbeat)
    timeout: float  # seconds, for the whole probe
    latency_threshold_ms: int | None = None  # slower than this: DEGRADED
    # HTTP
    method: str = "GET"  # GET or HEAD
    expected_status: tuple[int, ...] = ()  # empty: any 2xx or 3xx after redirects
    headers: dict[str, str] = field(default_factory=dict)  # may hold secrets: never logged
    verify_tls: bool = True
    max_body_bytes: int = 65_536
    max_redirects: int = 5
    # PostgreSQL / Redis
    password: str = ""  # kept apart from the target so the target can be shown
    # Heartbeat: evaluated from when the last ping arrived, without I/O
    last_ping_at: float | None = None  # epoch seconds
    interval: float = 30.0
    grace: float = 0.0


@dataclass
class ProbeOutcome:
    status: Status
    response_ms: float = 0.0
    error_code: ErrorCode = ErrorCode.NONE
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # e.g. a health+json document's checks
    metrics: dict = field(default_factory=dict)  # e.g. http_status, tls_days_left, body_bytes


# Health-document and callable status words (case-insensitive).
STATUS_WORDS: dict[str, Status] = {
    **dict.fromkeys(("pass", "ok", "up", "healthy"), Status.HEALTHY),
    **dict.fromkeys(("warn", "degraded"), Status.DEGRADED),
    **dict.fromkeys(("fail", "down", "unhealthy", "error"), Status.UNHEALTHY),
}
_SEVERITY = {
    Status.HEALTHY: 0,
    Status.MAINTENANCE: 0,
    Status.UNKNOWN: 1,
    Status.DEGRADED: 2,
    Status.UNHEALTHY: 3,
}
_STATUS_LABELS = {status.label: status for status in Status}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TLS_WARN_DAYS = 14
DEFAULT_HEADERS = {
    "User-Agent": "service-portal-healthcheck/1",
    "Accept": "application/health+json, application/json;q=0.9, */*;q=0.8",
}
SUB_CHECK_KEYS = ("componentId", "componentType", "status", "observedValue", "observedUnit")
MAX_SUB_CHECK_MESSAGES = 20
MAX_TEXT = 300  # characters of a target's text (output, exception) quoted in a message
MAX_REDIS_REPLY = 1 << 20
PYTHON_THREADS = 8
NO_PASSFILE = "/nonexistent/pgpass"  # libpq skips a missing file silently (/dev/null warns)

# The DER certificate of the TLS connection the current task just opened (set by the
# connector, read by the prober right after the request: the response may already have
# released its connection when the body was empty).
_PEER_CERT: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("peer_cert", default=None)


class _Failure(Exception):
    """Ends a probe with this status, code and message (raised inside, never escapes)."""

    def __init__(self, code: ErrorCode, message: str, status: Status = Status.UNHEALTHY):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class _Run:
    """One probe in progress: its spec, the outcome being filled, what it is doing now."""

    spec: ProbeSpec
    outcome: ProbeOutcome
    stage: str = "starting"  # ends "timed out after 2.0s <stage>"


async def probe(spec: ProbeSpec, policy: NetworkPolicy) -> ProbeOutcome:
    """Run one check, on the Prober shared by this event loop for this policy."""
    return await (await _shared_prober(policy)).probe(spec)


# probe()'s Probers: per event loop (a session belongs to one loop), per policy.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[NetworkPolicy, tuple]] = (
    weakref.WeakKeyDictionary()
)


async def _shared_prober(policy: NetworkPolicy) -> Prober:
    probers = _SHARED.setdefault(asyncio.get_running_loop(), {})
    entry = probers.get(policy)
    if entry is None:
        prober = Prober(policy)
        closer = _close_at_loop_end(prober, probers, policy)
        # Started on this loop, the generator is in the loop's async generators, which
        # asyncio.run() (and uvloop.run()) close before closing the loop: that closes the
        # session. The entry keeps it alive until then.
        entry = probers[policy] = (prober, closer)
        await anext(closer)
    return entry[0]


async def _close_at_loop_end(prober: Prober, probers: dict, policy: NetworkPolicy):
    try:
        yield
    finally:
        probers.pop(policy, None)
        await prober.close()


class Prober:
    """Runs probes on one event loop, sharing one HTTP session among them.

    ``verify_context`` replaces the system CA store for ``verify_tls`` HTTP checks (an
    organisation's internal CA, or a test CA)."""

    def __init__(
        self, policy: NetworkPolicy | None = None, *, verify_context: ssl.SSLContext | None = None
    ) -> None:
        self.policy = policy or NetworkPolicy.from_settings()
        self._verify_context = verify_context
        self._session: aiohttp.ClientSession | None = None
        self._kinds: dict[str, Callable[[_Run], Any]] = {
            "http": self._probe_http,
            "tcp": self._probe_tcp,
            "postgres": self._probe_postgres,
            "redis": self._probe_redis,
            "python": self._probe_python,
        }

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self, spec: ProbeSpec) -> ProbeOutcome:
        started = time.perf_counter()
        run = _Run(spec, ProbeOutcome(Status.HEALTHY))
        try:
            await self._dispatch(run)
        except _Failure as failure:
            _worsen(run.outcome, failure.status, failure.code, failure.message)
        except TimeoutError:
            message = f"timed out after {_seconds(spec.timeout)} {run.stage}"
            _worsen(run.outcome, Status.UNHEALTHY, ErrorCode.TIMEOUT, message)
        except Exception as exc:  # our bug, not the target's: say so and keep the worker going
            log.exception("probe_failed", check_id=spec.check_id, kind=spec.kind)
            message = f"probe error: {type(exc).__name__}: {_clip(str(exc))}"
            _worsen(run.outcome, Status.UNHEALTHY, ErrorCode.INTERNAL, message)
        outcome = run.outcome
        outcome.response_ms = round((time.perf_counter() - started) * 1000, 3)
        if spec.kind != "heartbeat":
            _apply_latency_threshold(spec, outcome)
        _redact(spec, outcome)
        return outcome

    async def _dispatch(self, run: _Run) -> None:
        kind = run.spec.kind
        if kind == "heartbeat":
            _probe_heartbeat(run)
            return
        handler = self._kinds.get(kind)
        if handler is None:
            raise _Failure(ErrorCode.INTERNAL, f"unknown check kind {kind!r}")
        async with asyncio.timeout(run.spec.timeout):
            await handler(run)

    # --- HTTP -------------------------------------------------------------------------------

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = _PeerCertConnector(
                resolver=PolicyResolver(self.policy),
                force_close=True,  # a new connection per probe, never a pooled one
                limit=0,  # the caller bounds concurrency
                ttl_dns_cache=10,  # caches only addresses the policy allowed
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=DEFAULT_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookies carried between probes
                timeout=aiohttp.ClientTimeout(),  # no aiohttp timers: the probe has one deadline
                trust_env=False,  # an environment proxy would bypass the network policy
            )
        return self._session

    async def _probe_http(self, run: _Run) -> None:
        spec = run.spec
        method = spec.method.upper()
        if method not in ("GET", "HEAD"):
            message = f"method {spec.method!r} is not supported (GET, HEAD)"
            raise _Failure(ErrorCode.BLOCKED, message)
        url = _parse_target(parse_http_url, spec.target)
        session = self._http_session()
        headers = spec.headers
        redirects = 0
        while True:
            self._check_hop(url, redirects)
            response = await self._request(run, session, method, url, headers, redirects)
            try:
                location = _redirect_location(response, spec)
                if location is None:
                    await self._evaluate_http(run, url, response, redirects)
                    return
            finally:
                response.close()
            if redirects >= spec.max_redirects:
                raise _Failure(ErrorCode.HTTP_STATUS, _redirect_refusal(spec, response.status))
            next_url = _follow(url, location)
            if headers and not _may_carry_credentials(url, next_url):
                headers = {}
                run.outcome.warnings.append(
                    f"custom headers not sent after the redirect to {next_url.origin()}"
                )
            url = next_url
            redirects += 1

    def _check_hop(self, url: URL, redirects: int) -> None:
        """The policy on one hop, before any connection: aiohttp's resolver sees names only,
        not address literals, so literals (and the port and name patterns) are checked here."""
        try:
            check_url_endpoint(url)
            self.policy.check(url.raw_host or "", url.port or 0)
        except (TargetError, PolicyError) as exc:
            if redirects:
                message = f"redirect to {_shown(url)} refused: {exc}"
                raise _Failure(ErrorCode.BLOCKED, message) from None
            raise _Failure(ErrorCode.BLOCKED, str(exc)) from None

    async def _request(
        self,
        run: _Run,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: dict[str, str],
        redirects: int,
    ) -> aiohttp.ClientResponse:
        where = format_host_port(url.raw_host or "", url.port or 0)
        run.stage = f"waiting for {where}"
        _PEER_CERT.set(None)
        try:
            return await session.request(
                method,
                url,
                headers=headers,
                allow_redirects=False,
                ssl=self._ssl_for(run.spec),
            )
        except TimeoutError:
            raise
        except Exception as exc:
            failure = _http_failure(exc, where)
            if redirects and failure.code == ErrorCode.BLOCKED:
                failure.message = f"redirect to {_shown(url)} refused: {failure.message}"
            elif redirects:
                failure.message = f"after redirect to {_shown(url)}: {failure.message}"
            raise failure from None

    def _ssl_for(self, spec: ProbeSpec) -> ssl.SSLContext | bool:
        if not spec.verify_tls:
            return tls_context(verify=False)
        return self._verify_context or True  # True: aiohttp's context on the system CAs

    async def _evaluate_http(
        self, run: _Run, url: URL, response: aiohttp.ClientResponse, redirects: int
    ) -> None:
        spec, outcome = run.spec, run.outcome
        outcome.metrics["http_status"] = response.status
        outcome.metrics["redirects"] = redirects
        if url.scheme == "https":
            _record_tls_expiry(outcome)
        body, truncated = b"", False
        if spec.method.upper() != "HEAD":
            body, truncated = await _read_body(run, response, url)
        outcome.metrics["body_bytes"] = len(body)
        if truncated:
            outcome.warnings.append(f"body truncated at {spec.max_body_bytes} bytes")
        expected = spec.expected_status
        http_ok = response.status in expected if expected else 200 <= response.status < 400
        if not http_ok:
            wanted = ", ".join(map(str, expected)) if expected else "2xx/3xx"
            message = f"HTTP {response.status} (expected {wanted})"
            _worsen(outcome, Status.UNHEALTHY, ErrorCode.HTTP_STATUS, message)
        if body and _is_json(response.content_type):
            _read_json_body(outcome, body, truncated, http_ok, spec.max_body_bytes)

    # --- TCP, PostgreSQL, Redis -------------------------------------------------------------

    async def _probe_tcp(self, run: _Run) -> None:
        endpoint = _parse_target(parse_host_port, run.spec.target)
        sock = await self._connect(run, endpoint)
        sock.close()

    async def _resolve(self, run: _Run, endpoint: Endpoint) -> list[str]:
        run.stage = f"resolving {endpoint.host}"
        try:
            return await self.policy.resolve(endpoint.host, endpoint.port)
        except PolicyError as exc:
            raise _Failure(ErrorCode.BLOCKED, str(exc)) from None
        except ResolveError as exc:
            raise _Failure(ErrorCode.DNS, str(exc)) from None

    async def _connect(self, run: _Run, endpoint: Endpoint) -> socket.socket:
        """A connected socket to an allowed address of the endpoint (happy eyeballs)."""
        addresses = await self._resolve(run, endpoint)
        run.stage = f"connecting to {endpoint}"
        infos = [_addr_info(address, endpoint.port) for address in addresses]
        try:
            return await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)
        except (OSError, RuntimeError) as exc:  # uvloop raises RuntimeError for some
            raise _connect_failure(exc, str(endpoint)) from None

    async def _probe_postgres(self, run: _Run) -> None:
        import psycopg

        spec = run.spec
        target = _parse_target(parse_postgres_dsn, spec.target)
        endpoint = target.endpoint
        addresses = await self._resolve(run, endpoint)
        run.stage = f"connecting to PostgreSQL at {endpoint}"
        parameters = {
            "application_name": "portal-healthcheck",
            **target.parameters,
            # libpq connects to hostaddr (checked) and uses host for TLS and messages only.
            "host": ",".join([endpoint.host] * len(addresses)),
            "hostaddr": ",".join(addresses),
            "port": str(endpoint.port),
            "password": spec.password,
            "passfile": NO_PASSFILE,  # never the worker's own saved passwords
            "connect_timeout": str(max(2, math.ceil(spec.timeout))),
        }
        try:
            conn = await psycopg.AsyncConnection.connect(autocommit=True, **parameters)
        except psycopg.Error as exc:
            raise _postgres_failure(exc, endpoint) from None
        try:
            run.stage = f"running SELECT 1 on {endpoint}"
            await conn.execute("SELECT 1")
            run.outcome.metrics["server_version"] = conn.info.parameter_status("server_version")
        except psycopg.Error as exc:
            raise _postgres_failure(exc, endpoint) from None
        finally:
            await conn.close()

    async def _probe_redis(self, run: _Run) -> None:
        """A raw RESP exchange (AUTH, SELECT, PING, INFO server) on an allowed address:
        cheaper than a client library, and it connects exactly where the policy allowed."""
        spec = run.spec
        target = _parse_target(parse_redis_url, spec.target)
        endpoint = target.endpoint
        sock = await self._connect(run, endpoint)
        tls = tls_context(verify=spec.verify_tls) if endpoint.tls else None
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=tls, server_hostname=endpoint.host if tls else None
            )
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise _connect_failure(exc, str(endpoint)) from None
        try:
            run.stage = f"waiting for Redis at {endpoint}"
            commands = _redis_commands(target.username, spec.password, target.db)
            writer.write(b"".join(_resp_command(*command) for command in commands))
            replies = [await _read_resp(reader, endpoint) for _ in commands]
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            message = f"Redis at {endpoint} broke off the exchange: {_describe(exc)}"
            raise _Failure(ErrorCode.CONNECTION, message) from None
        finally:
            writer.close()
        for command, reply in zip(commands, replies, strict=True):
            if isinstance(reply, _RedisError):
                message = f"Redis at {endpoint} answered {command[0]} with: {_clip(str(reply))}"
                raise _Failure(ErrorCode.REPORTED, message)
        version = _redis_version(replies[-1])
        if version:
            run.outcome.metrics["redis_version"] = version

    # --- Python -----------------------------------------------------------------------------

    async def _probe_python(self, run: _Run) -> None:
        spec = run.spec
        try:
            func = load_callable(spec.target)
        except TargetError as exc:
            raise _Failure(ErrorCode.BLOCKED, str(exc)) from None
        run.stage = f"running {spec.target}"
        try:
            if inspect.iscoroutinefunction(func):
                result = await func()
            else:
                # A thread of our own: a hung check must not starve DNS (default executor).
                # On timeout the thread runs on; only the probe stops waiting.
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(_python_executor(), func)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            message = f"{spec.target} raised {type(exc).__name__}: {_clip(str(exc))}"
            raise _Failure(ErrorCode.INTERNAL, message) from None
        _apply_callable_result(run.outcome, spec.target, result)


# --- Helpers: outcome -------------------------------------------------------------------------


def _worsen(outcome: ProbeOutcome, status: Status, code: ErrorCode, error: str) -> None:
    """Record a failure; the status and code only ever get worse."""
    if _SEVERITY[status] > _SEVERITY[outcome.status]:
        outcome.status = status
        outcome.error_code = code
    outcome.errors.append(error)


def _apply_latency_threshold(spec: ProbeSpec, outcome: ProbeOutcome) -> None:
    threshold = spec.latency_threshold_ms
    if threshold is None or outcome.status != Status.HEALTHY:
        return
    if outcome.response_ms > threshold:
        message = f"responded in {outcome.response_ms:.0f} ms, over the {threshold} ms threshold"
        _worsen(outcome, Status.DEGRADED, ErrorCode.SLOW, message)


def _redact(spec: ProbeSpec, outcome: ProbeOutcome) -> None:
    """Scrub header values and the password from everything an outcome says: a target may
    echo them back (in its health document, in an error message)."""
    secrets = [s for s in (spec.password, *spec.headers.values()) if len(s) >= 4]
    if not secrets:
        return
    outcome.errors = _scrub(outcome.errors, secrets)
    outcome.warnings = _scrub(outcome.warnings, secrets)
    outcome.details = _scrub(outcome.details, secrets)
    outcome.metrics = _scrub(outcome.metrics, secrets)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, secrets) for item in value]
    return value


def _seconds(value: float) -> str:
    """2.0 -> "2.0s", 0.25 -> "0.25s"."""
    return f"{value:.1f}s" if value == round(value, 1) else f"{value:g}s"


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    return _clip(str(exc)) or type(exc).__name__


def _parse_target[T](parse: Callable[[str], T], target: str) -> T:
    try:
        return parse(target)
    except TargetError as exc:
        raise _Failure(ErrorCode.BLOCKED, f"invalid target: {exc}") from None


def _connect_failure(exc: BaseException, where: str) -> _Failure:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return _Failure(ErrorCode.REFUSED, f"connection refused by {where}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = f"TLS certificate of {where} not trusted: {exc.verify_message}"
        return _Failure(ErrorCode.TLS, message)
    if isinstance(exc, ssl.SSLError):
        return _Failure(ErrorCode.TLS, f"TLS handshake with {where} failed ({exc.reason or exc})")
    reason = getattr(exc, "strerror", None) or _describe(exc)
    return _Failure(ErrorCode.CONNECTION, f"cannot connect to {where}: {reason}")


# --- Helpers: HTTP ----------------------------------------------------------------------------


class _PeerCertConnector(aiohttp.TCPConnector):
    """Notes the peer certificate of each new TLS connection for the task that opened it.

    Overrides aiohttp's internal ``_create_connection`` (stable since aiohttp 1.x; the TLS
    tests fail loudly if it changes)."""

    async def _create_connection(self, req, traces, timeout):  # type: ignore[no-untyped-def]
        protocol = await super()._create_connection(req, traces, timeout)
        transport = protocol.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            _PEER_CERT.set(ssl_object.getpeercert(binary_form=True))
        return protocol


def _http_failure(exc: Exception, where: str) -> _Failure:
    """What a failed request means, said without the exception's noise."""
    if isinstance(exc, PolicyError):
        return _Failure(ErrorCode.BLOCKED, str(exc))
    if isinstance(exc, ResolveError):
        return _Failure(ErrorCode.DNS, str(exc))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return _Failure(ErrorCode.TLS, f"TLS certificate of {where} not trusted: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        reason = getattr(exc.__cause__, "reason", None) or _describe(exc.__cause__ or exc)
        return _Failure(ErrorCode.TLS, f"TLS handshake with {where} failed ({reason})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        reason = getattr(exc.os_error, "strerror", None) or _describe(exc.os_error)
        return _Failure(ErrorCode.DNS, f"{where.rsplit(':', 1)[0]} does not resolve ({reason})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect_failure(exc.os_error, where)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _Failure(ErrorCode.CONNECTION, f"{where} closed the connection without answering")
    if isinstance(exc, aiohttp.ClientResponseError):
        message = f"{where} sent an invalid HTTP response ({_clip(exc.message)})"
        return _Failure(ErrorCode.CONNECTION, message)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return _Failure(ErrorCode.CONNECTION, f"request to {where} failed: {_describe(exc)}")
    if isinstance(exc, ValueError):  # aiohttp refuses a header with a line break
        return _Failure(ErrorCode.BLOCKED, f"the request cannot be sent: {_describe(exc)}")
    raise exc


def _redirect_location(response: aiohttp.ClientResponse, spec: ProbeSpec) -> str | None:
    """Where to go next, or None when this response is the one to judge (not a redirect,
    no Location, or a redirect status the check expects)."""
    if response.status not in REDIRECT_STATUSES or response.status in spec.expected_status:
        return None
    return response.headers.get("Location")


def _redirect_refusal(spec: ProbeSpec, status: int) -> str:
    if spec.max_redirects:
        return f"too many redirects (more than {spec.max_redirects})"
    return f"HTTP {status} redirect not followed (max_redirects is 0; expect {status} to accept it)"


def _follow(url: URL, location: str) -> URL:
    try:
        next_url = url.join(URL(location))
    except ValueError:
        message = f"redirect to an invalid URL {_clip(location, 100)!r}"
        raise _Failure(ErrorCode.BLOCKED, message) from None
    if next_url.scheme not in HTTP_SCHEMES:
        shown = _clip(location, 100)
        message = f"redirect to {shown!r} refused: the scheme must be http or https"
        raise _Failure(ErrorCode.BLOCKED, message)
    return next_url


def _may_carry_credentials(old: URL, new: URL) -> bool:
    """Custom headers (often credentials) go only to the same origin, or an http -> https
    upgrade of the same host on default ports."""
    if old.origin() == new.origin():
        return True
    return (
        old.raw_host == new.raw_host
        and (old.scheme, new.scheme) == ("http", "https")
        and old.is_default_port()
        and new.is_default_port()
    )


def _shown(url: URL) -> str:
    """A URL fit for a message: no credentials, no query (it may carry tokens)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


async def _read_body(run: _Run, response: aiohttp.ClientResponse, url: URL) -> tuple[bytes, bool]:
    """At most max_body_bytes of the body, and whether there was more. Stops reading there:
    the connection is closed with the rest unread, so an endless body costs nothing."""
    cap = run.spec.max_body_bytes
    run.stage = f"reading the body from {format_host_port(url.raw_host or '', url.port or 0)}"
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await response.content.readany():
            chunks.append(chunk)
            size += len(chunk)
            run.outcome.metrics["body_bytes"] = min(size, cap)
            if size > cap:
                return b"".join(chunks)[:cap], True
    except aiohttp.ClientError as exc:
        message = f"the body from {_shown(url)} was cut short: {_describe(exc)}"
        raise _Failure(ErrorCode.CONNECTION, message) from None
    return b"".join(chunks), False


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _read_json_body(
    outcome: ProbeOutcome, body: bytes, truncated: bool, http_ok: bool, cap: int
) -> None:
    if truncated:
        if http_ok:
            message = f"JSON body larger than {cap} bytes: not parsed (raise max_body_bytes)"
            _worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, message)
        return
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        if http_ok:
            _worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, "body is not valid JSON")
        return
    apply_health_document(outcome, document)


def apply_health_document(outcome: ProbeOutcome, document: Any) -> None:
    """Judge a JSON body as a health document (draft-inadarei-api-health-check): its
    top-level "status" and its "checks". JSON without a "status" is just a body."""
    if not isinstance(document, dict) or "status" not in document:
        return
    raw = document["status"]
    level = _status_of_word(raw)
    outcome.details["status"] = raw
    output = document.get("output")
    if isinstance(output, str) and output:
        outcome.details["output"] = output
    if level is None:
        message = f"health document status {raw!r} is unknown"
        _worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, message)
    elif level != Status.HEALTHY:
        said = outcome.details.get("output")
        message = f"health document reports {raw!r}" + (f": {_clip(said)}" if said else "")
        _worsen(outcome, level, ErrorCode.REPORTED, message)
    checks = document.get("checks")
    if isinstance(checks, dict):
        outcome.details["checks"] = _sub_checks(checks)
        _report_sub_checks(outcome, outcome.details["checks"])


def _status_of_word(value: Any) -> Status | None:
    return STATUS_WORDS.get(value.strip().lower()) if isinstance(value, str) else None


def _sub_checks(checks: dict) -> dict[str, list[dict]]:
    """The draft's "checks": "component:measurement" -> list of observations, kept to the
    fields the portal shows."""
    result: dict[str, list[dict]] = {}
    for name, entries in checks.items():
        items = [entries] if isinstance(entries, dict) else entries
        if not isinstance(items, list):
            continue
        result[str(name)] = [
            {key: entry[key] for key in (*SUB_CHECK_KEYS, "output", "time") if key in entry}
            for entry in items
            if isinstance(entry, dict)
        ]
    return result


def _report_sub_checks(outcome: ProbeOutcome, checks: dict[str, list[dict]]) -> None:
    """A failing sub-check explains the outcome (an error) when it is as bad as the outcome;
    otherwise it is a warning (e.g. one failing replica of a passing service)."""
    reported = 0
    for name, entries in checks.items():
        for entry in entries:
            if reported >= MAX_SUB_CHECK_MESSAGES:
                return
            raw = entry.get("status")
            if raw is None:
                continue
            level = _status_of_word(raw)
            output = entry.get("output")
            text = f"{name}: {raw}" + (f": {_clip(str(output))}" if output else "")
            if level is None:
                outcome.warnings.append(f"{name}: status {raw!r} is unknown")
            elif level == Status.HEALTHY:
                continue
            elif level == outcome.status:
                outcome.errors.append(text)
            else:
                outcome.warnings.append(text)
            reported += 1


def _record_tls_expiry(outcome: ProbeOutcome) -> None:
    der = _PEER_CERT.get()
    if der is None:
        return
    not_after = _certificate_not_after(der)
    days = math.floor((not_after - time.time()) / 86400)
    outcome.metrics["tls_days_left"] = days
    if days < TLS_WARN_DAYS:
        date = datetime.fromtimestamp(not_after, UTC).date().isoformat()
        when = f"expired {-days} days ago" if days < 0 else f"expires in {days} days"
        outcome.warnings.append(f"TLS certificate {when} ({date})")


@functools.lru_cache(maxsize=1024)
def _certificate_not_after(der: bytes) -> float:
    """Epoch seconds the certificate expires at (cached: most probes see the same few)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


# --- Helpers: PostgreSQL and Redis ------------------------------------------------------------


def _postgres_failure(exc: Exception, endpoint: Endpoint) -> _Failure:
    text = _clip(str(exc), 1000)
    if "Connection refused" in text:
        return _Failure(ErrorCode.REFUSED, f"connection refused by {endpoint}")
    if "timeout expired" in text:
        return _Failure(ErrorCode.TIMEOUT, f"PostgreSQL at {endpoint}: connection timed out")
    if "FATAL:" in text:
        reason = text.split("FATAL:", 1)[1].strip()
        return _Failure(ErrorCode.REPORTED, f"PostgreSQL at {endpoint}: {_clip(reason)}")
    reason = text.removeprefix("connection failed: ")
    return _Failure(ErrorCode.CONNECTION, f"PostgreSQL at {endpoint}: {_clip(reason)}")


class _RedisError(str):
    """An error reply (``-ERR ...``)."""


def _redis_commands(username: str, password: str, db: int) -> list[tuple[str, ...]]:
    commands: list[tuple[str, ...]] = []
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        commands.append(("SELECT", str(db)))
    commands += [("PING",), ("INFO", "server")]
    return commands


def _resp_command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return b"".join([b"*%d\r\n" % len(encoded), *(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)])


async def _read_resp(reader: asyncio.StreamReader, endpoint: Endpoint) -> Any:
    """One reply: simple string, error, integer or bulk string (all a probe needs)."""
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise ValueError("connection closed")
    kind, value = line[:1], line[1:-2]
    if kind == b"+":
        return value.decode(errors="replace")
    if kind == b"-":
        return _RedisError(value.decode(errors="replace"))
    if kind == b":":
        return int(value)
    if kind == b"$":
        length = int(value)
        if length < 0:
            return None
        if length > MAX_REDIS_REPLY:
            raise ValueError(f"a reply of {length} bytes")
        return (await reader.readexactly(length + 2))[:-2].decode(errors="replace")
    raise _Failure(ErrorCode.CONNECTION, f"{endpoint} does not speak Redis (reply {line[:20]!r})")


def _redis_version(info: Any) -> str | None:
    if not isinstance(info, str) or isinstance(info, _RedisError):
        return None
    match = re.search(r"^redis_version:(\S+)", info, re.MULTILINE)
    return match.group(1) if match else None


@functools.cache
def tls_context(*, verify: bool) -> ssl.SSLContext:
    """Client contexts, made once. The unverified one loads no CA store on purpose: OpenSSL
    still builds the chain it will not check, and a store backed by /etc/ssl/certs costs a
    failed directory lookup per handshake for a self-signed or private-CA certificate
    (about 0.3 ms of CPU, measured), which is what verify-off targets usually have."""
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _addr_info(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


# --- Heartbeat --------------------------------------------------------------------------------


def _probe_heartbeat(run: _Run) -> None:
    spec = run.spec
    if spec.last_ping_at is None:
        raise _Failure(ErrorCode.NO_HEARTBEAT, "no heartbeat received yet")
    age = time.time() - spec.last_ping_at
    run.outcome.metrics["seconds_since_ping"] = round(age, 1)
    if age > spec.interval + spec.grace:
        message = (
            f"no heartbeat for {age:.0f}s "
            f"(expected every {spec.interval:g}s + {spec.grace:g}s grace)"
        )
        raise _Failure(ErrorCode.NO_HEARTBEAT, message)


# --- Python -----------------------------------------------------------------------------------

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def validate_callable_path(path: str) -> str | None:
    """Why a python check may not name ``path`` (for a field error), or None when it may."""
    try:
        load_callable(path)
    except TargetError as exc:
        return str(exc)
    return None


def load_callable(path: str) -> Callable[[], Any]:
    """The callable at ``path``, only under settings.HEALTH_CALLABLE_PREFIXES (checked
    before anything is imported), and offered by its module (see _check_exported)."""
    from django.conf import settings

    prefixes = list(settings.HEALTH_CALLABLE_PREFIXES)
    if not _DOTTED.fullmatch(path or ""):
        raise TargetError(f"{path!r} is not a dotted path like package.module.function")
    if not any(_under_prefix(path, prefix) for prefix in prefixes):
        allowed = ", ".join(prefixes) or "none"
        raise TargetError(f"{path} is not under HEALTH_CALLABLE_PREFIXES ({allowed})")
    module_name, _, name = path.rpartition(".")
    if name.startswith("_"):
        raise TargetError(f"{path} is private (starts with _)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name}: {exc}") from None
    except Exception as exc:
        raise TargetError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    func = getattr(module, name, None)
    if func is None:
        raise TargetError(f"{module_name} has no {name}")
    if not callable(func):
        raise TargetError(f"{path} is not callable")
    _check_exported(module, name, func, prefixes)
    return func


def _check_exported(module: Any, name: str, func: Any, prefixes: list[str]) -> None:
    """A module's ``__all__`` is the list of what it offers; without one, only what it
    defines counts -- so ``import os`` in a checks module does not offer ``os.system``."""
    public = getattr(module, "__all__", None)
    if public is not None:
        if name not in public:
            raise TargetError(f"{module.__name__}.{name} is not in {module.__name__}.__all__")
        return
    home = getattr(func, "__module__", None) or "an unknown module"
    if not any(_under_prefix(f"{home}.{name}", prefix) for prefix in prefixes):
        message = f"{module.__name__}.{name} is imported from {home}, not defined under a prefix"
        raise TargetError(message)


def _under_prefix(path: str, prefix: str) -> bool:
    prefix = prefix.strip()
    if not prefix:
        return False
    return path.startswith(prefix if prefix.endswith(".") else prefix + ".")


@functools.cache
def _python_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=PYTHON_THREADS, thread_name_prefix="healthcheck")


def _apply_callable_result(outcome: ProbeOutcome, path: str, result: Any) -> None:
    """bool, Status, a status word, or {"status", "details", "errors", "warnings", "metrics"}."""
    report = result if isinstance(result, dict) else {"status": result}
    level = _callable_status(report.get("status"))
    if level is None:
        shown = _clip(repr(report.get("status")), 100)
        message = f"{path} returned status {shown}: expected a bool, a status word or a Status"
        _worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, message)
        return
    if isinstance(report.get("details"), dict):
        outcome.details.update(_json_safe(report["details"]))
    if isinstance(report.get("metrics"), dict):
        outcome.metrics.update(_json_safe(report["metrics"]))
    outcome.warnings += _texts(report.get("warnings"))
    errors = _texts(report.get("errors"))
    if _SEVERITY[level] > _SEVERITY[Status.HEALTHY]:
        first = errors[0] if errors else f"{path} reported {level.label}"
        _worsen(outcome, level, ErrorCode.REPORTED, first)
        outcome.errors += errors[1:]
    else:
        outcome.status = level  # healthy, or maintenance if the callable says so
        outcome.errors += errors


def _json_safe(value: dict) -> dict:
    """What a callable reports is stored as JSON: anything else (a datetime) becomes text."""
    return json.loads(json.dumps(value, default=str))


def _callable_status(value: Any) -> Status | None:
    if isinstance(value, bool):
        return Status.HEALTHY if value else Status.UNHEALTHY
    if isinstance(value, Status):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return STATUS_WORDS.get(word) or _STATUS_LABELS.get(word)
    return None


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    return [_clip(str(item), 1000) for item in items] if isinstance(items, list | tuple) else []

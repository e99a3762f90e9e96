"""HTTP(S) checks: the answer's status, a JSON or health+json body understood (its status
and sub-checks), the TLS certificate's days to expiry. The network policy is applied after
DNS resolution, on every redirect hop (portal.egress)."""

import contextvars
import functools
import json
import math
import ssl
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import aiohttp
from cryptography import x509
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr
from yarl import URL

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import (
    Failure,
    ProbeOutcome,
    ProbeSpec,
    Run,
    clip,
    describe,
    parse_target,
    status_of_word,
    worsen,
)
from healthchecks.probes.prober import Prober, connect_failure, tls_context
from healthchecks.status import ErrorCode, Status
from portal.egress import (
    HTTP_SCHEMES,
    Endpoint,
    PolicyError,
    PolicyResolver,
    ResolveError,
    TargetError,
    check_url_endpoint,
    format_host_port,
    parse_http_url,
)
from portal.fields import Integer

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TLS_WARN_DAYS = 14
DEFAULT_HEADERS = {
    "User-Agent": "service-portal-healthcheck/1",
    "Accept": "application/health+json, application/json;q=0.9, */*;q=0.8",
}
SUB_CHECK_KEYS = ("componentId", "componentType", "status", "observedValue", "observedUnit")
MAX_SUB_CHECK_MESSAGES = 20

# The DER certificate of the TLS connection the current task just opened (set by the
# connector, read by the prober right after the request: the response may already have
# released its connection when the body was empty).
_PEER_CERT: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("peer_cert", default=None)


def _status_codes(codes: list[int]) -> list[int]:
    bad = [c for c in codes if not 100 <= c <= 599]
    if bad:
        raise ValueError(f"not HTTP status codes: {bad}")
    return sorted(set(codes))


def _header_names(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n ") or "\n" in value or "\r" in value:
            raise ValueError(f"bad header {name!r}")
    return headers


class HttpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "HEAD"] = "GET"
    expected_status: Annotated[list[Integer], AfterValidator(_status_codes)] = Field(
        default_factory=list, max_length=50
    )
    headers: Annotated[dict[str, StrictStr], AfterValidator(_header_names)] = Field(
        default_factory=dict, description="Kept encrypted."
    )
    verify_tls: StrictBool = True
    max_body_bytes: Integer = Field(65_536, ge=0, le=10_485_760)
    max_redirects: Integer = Field(5, ge=0, le=20)


def http_endpoint(target: str) -> Endpoint:
    url = parse_http_url(target)
    return Endpoint(url.raw_host or "", url.port or 0, tls=url.scheme == "https")


def _new_session(prober: Prober) -> aiohttp.ClientSession:
    """One session per Prober, whose connector never reuses a connection: each probe opens
    a new TCP connection and, for https, does a full TLS handshake, as a real client would."""
    connector = _PeerCertConnector(
        resolver=PolicyResolver(prober.policy),
        force_close=True,  # a new connection per probe, never a pooled one
        limit=0,  # the caller bounds concurrency
        ttl_dns_cache=10,  # caches only addresses the policy allowed
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=DEFAULT_HEADERS,
        cookie_jar=aiohttp.DummyCookieJar(),  # no cookies carried between probes
        timeout=aiohttp.ClientTimeout(),  # no aiohttp timers: the probe has one deadline
        trust_env=False,  # an environment proxy would bypass the network policy
    )


async def probe_http(prober: Prober, run: Run) -> None:
    spec = run.spec
    method = spec.options["method"].upper()
    if method not in ("GET", "HEAD"):
        message = f"method {method!r} is not supported (GET, HEAD)"
        raise Failure(ErrorCode.BLOCKED, message)
    url = parse_target(parse_http_url, spec.target)
    session = prober.resource("http-session", _new_session)
    headers = spec.secrets.get("headers", {})
    redirects = 0
    while True:
        _check_hop(prober, url, redirects)
        response = await _request(prober, run, session, method, url, headers, redirects)
        try:
            location = _redirect_location(response, spec)
            if location is None:
                await _evaluate_http(run, url, response, redirects)
                return
        finally:
            response.close()
        if redirects >= spec.options["max_redirects"]:
            raise Failure(ErrorCode.HTTP_STATUS, _redirect_refusal(spec, response.status))
        next_url = _follow(url, location)
        if headers and not _may_carry_credentials(url, next_url):
            headers = {}
            run.outcome.warnings.append(
                f"custom headers not sent after the redirect to {next_url.origin()}"
            )
        url = next_url
        redirects += 1


def _check_hop(prober: Prober, url: URL, redirects: int) -> None:
    """The policy on one hop, before any connection: aiohttp's resolver sees names only,
    not address literals, so literals (and the port and name patterns) are checked here."""
    try:
        check_url_endpoint(url)
        prober.policy.check(url.raw_host or "", url.port or 0)
    except (TargetError, PolicyError) as exc:
        if redirects:
            message = f"redirect to {_shown(url)} refused: {exc}"
            raise Failure(ErrorCode.BLOCKED, message) from None
        raise Failure(ErrorCode.BLOCKED, str(exc)) from None


async def _request(
    prober: Prober,
    run: Run,
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
            ssl=_ssl_for(prober, run.spec),
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


def _ssl_for(prober: Prober, spec: ProbeSpec) -> ssl.SSLContext | bool:
    if not spec.options["verify_tls"]:
        return tls_context(verify=False)
    return prober.verify_context or True  # True: aiohttp's context on the system CAs


async def _evaluate_http(
    run: Run, url: URL, response: aiohttp.ClientResponse, redirects: int
) -> None:
    spec, outcome = run.spec, run.outcome
    outcome.metrics["http_status"] = response.status
    outcome.metrics["redirects"] = redirects
    if url.scheme == "https":
        _record_tls_expiry(outcome)
    body, truncated = b"", False
    if spec.options["method"].upper() != "HEAD":
        body, truncated = await _read_body(run, response, url)
    outcome.metrics["body_bytes"] = len(body)
    if truncated:
        outcome.warnings.append(f"body truncated at {spec.options['max_body_bytes']} bytes")
    expected = spec.options["expected_status"]
    http_ok = response.status in expected if expected else 200 <= response.status < 400
    if not http_ok:
        wanted = ", ".join(map(str, expected)) if expected else "2xx/3xx"
        message = f"HTTP {response.status} (expected {wanted})"
        worsen(outcome, Status.UNHEALTHY, ErrorCode.HTTP_STATUS, message)
    if body and _is_json(response.content_type):
        _read_json_body(outcome, body, truncated, http_ok, spec.options["max_body_bytes"])


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


def _http_failure(exc: Exception, where: str) -> Failure:
    """What a failed request means, said without the exception's noise."""
    if isinstance(exc, PolicyError):
        return Failure(ErrorCode.BLOCKED, str(exc))
    if isinstance(exc, ResolveError):
        return Failure(ErrorCode.DNS, str(exc))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return Failure(ErrorCode.TLS, f"TLS certificate of {where} not trusted: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        reason = getattr(exc.__cause__, "reason", None) or describe(exc.__cause__ or exc)
        return Failure(ErrorCode.TLS, f"TLS handshake with {where} failed ({reason})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        reason = getattr(exc.os_error, "strerror", None) or describe(exc.os_error)
        return Failure(ErrorCode.DNS, f"{where.rsplit(':', 1)[0]} does not resolve ({reason})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_failure(exc.os_error, where)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Failure(ErrorCode.CONNECTION, f"{where} closed the connection without answering")
    if isinstance(exc, aiohttp.ClientResponseError):
        message = f"{where} sent an invalid HTTP response ({clip(exc.message)})"
        return Failure(ErrorCode.CONNECTION, message)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Failure(ErrorCode.CONNECTION, f"request to {where} failed: {describe(exc)}")
    if isinstance(exc, ValueError):  # aiohttp refuses a header with a line break
        return Failure(ErrorCode.BLOCKED, f"the request cannot be sent: {describe(exc)}")
    raise exc


def _redirect_location(response: aiohttp.ClientResponse, spec: ProbeSpec) -> str | None:
    """Where to go next, or None when this response is the one to judge (not a redirect,
    no Location, or a redirect status the check expects)."""
    if (
        response.status not in REDIRECT_STATUSES
        or response.status in spec.options["expected_status"]
    ):
        return None
    return response.headers.get("Location")


def _redirect_refusal(spec: ProbeSpec, status: int) -> str:
    if spec.options["max_redirects"]:
        return f"too many redirects (more than {spec.options['max_redirects']})"
    return f"HTTP {status} redirect not followed (max_redirects is 0; expect {status} to accept it)"


def _follow(url: URL, location: str) -> URL:
    try:
        next_url = url.join(URL(location))
    except ValueError:
        message = f"redirect to an invalid URL {clip(location, 100)!r}"
        raise Failure(ErrorCode.BLOCKED, message) from None
    if next_url.scheme not in HTTP_SCHEMES:
        shown = clip(location, 100)
        message = f"redirect to {shown!r} refused: the scheme must be http or https"
        raise Failure(ErrorCode.BLOCKED, message)
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


async def _read_body(run: Run, response: aiohttp.ClientResponse, url: URL) -> tuple[bytes, bool]:
    """At most max_body_bytes of the body, and whether there was more. Stops reading there:
    the connection is closed with the rest unread, so an endless body costs nothing."""
    cap = run.spec.options["max_body_bytes"]
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
        message = f"the body from {_shown(url)} was cut short: {describe(exc)}"
        raise Failure(ErrorCode.CONNECTION, message) from None
    return b"".join(chunks), False


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _read_json_body(
    outcome: ProbeOutcome, body: bytes, truncated: bool, http_ok: bool, cap: int
) -> None:
    if truncated:
        if http_ok:
            message = f"JSON body larger than {cap} bytes: not parsed (raise max_body_bytes)"
            worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, message)
        return
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        if http_ok:
            worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, "body is not valid JSON")
        return
    apply_health_document(outcome, document)


def apply_health_document(outcome: ProbeOutcome, document: Any) -> None:
    """Judge a JSON body as a health document (draft-inadarei-api-health-check): its
    top-level "status" and its "checks". JSON without a "status" is just a body."""
    if not isinstance(document, dict) or "status" not in document:
        return
    raw = document["status"]
    level = status_of_word(raw)
    outcome.details["status"] = raw
    output = document.get("output")
    if isinstance(output, str) and output:
        outcome.details["output"] = output
    if level is None:
        message = f"health document status {raw!r} is unknown"
        worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, message)
    elif level != Status.HEALTHY:
        said = outcome.details.get("output")
        message = f"health document reports {raw!r}" + (f": {clip(said)}" if said else "")
        worsen(outcome, level, ErrorCode.REPORTED, message)
    checks = document.get("checks")
    if isinstance(checks, dict):
        outcome.details["checks"] = _sub_checks(checks)
        _report_sub_checks(outcome, outcome.details["checks"])


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
            level = status_of_word(raw)
            output = entry.get("output")
            text = f"{name}: {raw}" + (f": {clip(str(output))}" if output else "")
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
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


KIND = Kind(
    name="http",
    label="HTTP(S)",
    probe=probe_http,
    options=HttpOptions,
    secrets=("headers",),
    endpoint=http_endpoint,
)

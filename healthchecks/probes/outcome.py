"""What a probe is asked (``ProbeSpec``) and what it answers (``ProbeOutcome``), with the
small helpers every kind of probe uses to fill an outcome."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from healthchecks.status import ErrorCode, Status
from portal.egress import TargetError

MAX_TEXT = 300  # characters of a target's text (output, exception) quoted in a message
# Health-document and callable status words (case-insensitive).
STATUS_WORDS: dict[str, Status] = {
    **dict.fromkeys(("pass", "ok", "up", "healthy"), Status.HEALTHY),
    **dict.fromkeys(("warn", "degraded"), Status.DEGRADED),
    **dict.fromkeys(("fail", "down", "unhealthy", "error"), Status.UNHEALTHY),
}
SEVERITY = {
    Status.HEALTHY: 0,
    Status.MAINTENANCE: 0,
    Status.UNKNOWN: 1,
    Status.DEGRADED: 2,
    Status.UNHEALTHY: 3,
}


@dataclass(frozen=True)
class ProbeSpec:
    """One check to probe. ``options`` are its kind's settings with their defaults filled in
    (healthchecks.probes.kinds), ``secrets`` its kind's secret settings (headers, a password):
    never logged, and scrubbed from every outcome."""

    check_id: int
    kind: str  # a name in healthchecks.probes.kinds.KINDS
    target: str  # URL, "host:port", DSN (no password), redis URL, dotted path, or "" (heartbeat)
    timeout: float  # seconds, for the whole probe
    latency_threshold_ms: int | None = None  # slower than this: DEGRADED
    interval: float = 30.0
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    last_ping_at: float | None = None  # epoch seconds: a heartbeat's last ping


@dataclass
class ProbeOutcome:
    status: Status
    response_ms: float = 0.0
    error_code: ErrorCode = ErrorCode.NONE
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # e.g. a health+json document's checks
    metrics: dict = field(default_factory=dict)  # e.g. http_status, tls_days_left, body_bytes


class Failure(Exception):
    """Ends a probe with this status, code and message (raised inside, never escapes)."""

    def __init__(self, code: ErrorCode, message: str, status: Status = Status.UNHEALTHY):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Run:
    """One probe in progress: its spec, the outcome being filled, what it is doing now."""

    spec: ProbeSpec
    outcome: ProbeOutcome
    stage: str = "starting"  # ends "timed out after 2.0s <stage>"


def worsen(outcome: ProbeOutcome, status: Status, code: ErrorCode, error: str) -> None:
    """Record a failure; the status and code only ever get worse."""
    if SEVERITY[status] > SEVERITY[outcome.status]:
        outcome.status = status
        outcome.error_code = code
    outcome.errors.append(error)


def apply_latency_threshold(spec: ProbeSpec, outcome: ProbeOutcome) -> None:
    threshold = spec.latency_threshold_ms
    if threshold is None or outcome.status != Status.HEALTHY:
        return
    if outcome.response_ms > threshold:
        message = f"responded in {outcome.response_ms:.0f} ms, over the {threshold} ms threshold"
        worsen(outcome, Status.DEGRADED, ErrorCode.SLOW, message)


def redact(spec: ProbeSpec, outcome: ProbeOutcome) -> None:
    """Scrub every secret of the spec (header values, a password) from everything an outcome
    says: a target may echo them back (in its health document, in an error message)."""
    secrets = [s for s in _texts_in(spec.secrets) if len(s) >= 4]
    if not secrets:
        return
    outcome.errors = _scrub(outcome.errors, secrets)
    outcome.warnings = _scrub(outcome.warnings, secrets)
    outcome.details = _scrub(outcome.details, secrets)
    outcome.metrics = _scrub(outcome.metrics, secrets)


def _texts_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _texts_in(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts_in(item)]
    return []


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


def seconds(value: float) -> str:
    """2.0 -> "2.0s", 0.25 -> "0.25s"."""
    return f"{value:.1f}s" if value == round(value, 1) else f"{value:g}s"


def clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    return clip(str(exc)) or type(exc).__name__


def parse_target[T](parse: Callable[[str], T], target: str) -> T:
    try:
        return parse(target)
    except TargetError as exc:
        raise Failure(ErrorCode.BLOCKED, f"invalid target: {exc}") from None


def status_of_word(value: Any) -> Status | None:
    return STATUS_WORDS.get(value.strip().lower()) if isinstance(value, str) else None

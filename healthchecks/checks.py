"""Check definitions: validation, planning (created / updated / unchanged / removed) and
writing, for the API, the admin and the registry manifest alike."""

import secrets as random_tokens
from dataclasses import dataclass, field

from django.utils import timezone

from healthchecks import scheduling
from healthchecks.models import CheckKind, CheckSchedule, CheckState, HealthCheck
from healthchecks.probes import ProbeSpec
from healthchecks.schemas import CheckIn
from services import encryption

SCALARS = ("kind", "target", "interval", "timeout", "retries", "latency_threshold_ms", "enabled")
OPTIONS = {
    CheckKind.HTTP: ("method", "expected_status", "verify_tls", "max_body_bytes", "max_redirects"),
    CheckKind.HEARTBEAT: ("grace",),
}
SECRETS = ("headers", "password")
NETWORK_KINDS = (CheckKind.HTTP, CheckKind.TCP, CheckKind.POSTGRES, CheckKind.REDIS)


def definition_errors(state: dict, prefix: str = "") -> dict[str, str]:
    """Per-field reasons a definition (its stored form) cannot be used, beyond what its
    schema already checks."""
    from healthchecks import netpolicy, probes  # the probe stack loads only when needed

    errors: dict[str, str] = {}
    kind, target = state["kind"], state["target"]
    if state["timeout"] > state["interval"]:
        errors[f"{prefix}timeout"] = (
            f"{state['timeout']:g}s is longer than the interval ({state['interval']}s)"
        )
    if kind in NETWORK_KINDS:
        if not target:
            errors[f"{prefix}target"] = "required for this kind"
        else:
            for name, reason in netpolicy.validate_target(kind, target).items():
                errors[f"{prefix}{name}"] = reason
    elif kind == CheckKind.PYTHON:
        reason = probes.validate_callable_path(target)
        if reason:
            errors[f"{prefix}target"] = reason
    return errors


def desired_state(spec: CheckIn, existing: HealthCheck | None) -> dict:
    """The stored form of a definition: given fields replace, left-out ones are kept."""
    given = spec.model_fields_set
    current = stored_state(existing) if existing else None

    def keep(name: str) -> bool:
        return current is not None and name not in given

    state = {n: current[n] if keep(n) else getattr(spec, n) for n in SCALARS}
    state["is_critical"] = current["is_critical"] if keep("critical") else spec.critical
    state["options"] = {
        n: current["options"].get(n, getattr(spec, n)) if keep(n) else getattr(spec, n)
        for n in OPTIONS.get(spec.kind, ())
    }
    secrets = {n: current["secrets"].get(n) if keep(n) else getattr(spec, n) for n in SECRETS}
    state["secrets"] = {k: v for k, v in secrets.items() if v}
    return state


def stored_state(check: HealthCheck) -> dict:
    state = {name: getattr(check, name) for name in SCALARS}
    state["is_critical"] = check.is_critical
    state["options"] = dict(check.options)
    state["secrets"] = read_secrets(check)
    return state


def read_secrets(check: HealthCheck) -> dict:
    return encryption.decrypt(check.secrets) if check.secrets else {}


@dataclass
class CheckPlan:
    name: str
    path: str
    existing: HealthCheck | None
    state: dict | None  # None: remove
    changes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.state is None:
            return "removed"
        if self.existing is None:
            return "created"
        return "updated" if self.changes else "unchanged"


def plan(
    specs: list[CheckIn], existing: list[HealthCheck], prefix: str
) -> tuple[list[CheckPlan], dict[str, str]]:
    """Plans that make a service's checks exactly ``specs`` (matched by name)."""
    by_name = {c.name: c for c in existing}
    plans, errors, seen = [], {}, set()
    for i, spec in enumerate(specs):
        where = f"{prefix}checks[{i}]."
        if spec.name in seen:
            errors[f"{where}name"] = f"check {spec.name!r} appears twice"
            continue
        seen.add(spec.name)
        current = by_name.get(spec.name)
        if current is not None and current.kind != spec.kind:
            current = None  # another kind is another check: replace it whole
            plans.append(CheckPlan(spec.name, where, by_name[spec.name], None))
        state = desired_state(spec, current)
        errors.update(definition_errors(state, where))
        changes = (
            []
            if current is None
            else sorted(k for k, v in state.items() if stored_state(current)[k] != v)
        )
        plans.append(CheckPlan(spec.name, where, current, state, changes))
    plans += [CheckPlan(c.name, prefix, c, None) for c in existing if c.name not in seen]
    return plans, errors


def write(service_id: int, plans: list[CheckPlan]) -> None:
    now = timezone.now()
    removed = [p.existing.pk for p in plans if p.outcome == "removed"]
    HealthCheck.objects.filter(pk__in=removed).delete()
    for item in plans:
        if item.outcome in ("created", "updated"):
            save(service_id, item.name, item.state, item.existing, now)


def save(service_id: int, name: str, state: dict, existing: HealthCheck | None, now) -> HealthCheck:
    check = existing or HealthCheck(service_id=service_id, name=name, created_at=now)
    previous_interval = check.interval if existing else None
    for key in (*SCALARS, "is_critical", "options"):
        setattr(check, key, state[key])
    check.secrets = encryption.encrypt(state["secrets"]) if state["secrets"] else ""
    if check.kind == CheckKind.HEARTBEAT and not check.heartbeat_token:
        check.heartbeat_token = random_tokens.token_urlsafe(24)
    check.updated_at = now
    check.save()
    CheckState.objects.get_or_create(health_check=check)
    scheduling.reschedule(
        check, now, interval_changed=previous_interval not in (None, check.interval)
    )
    return check


def next_due_at(check: HealthCheck):
    """When the check runs next; None while it is disabled."""
    try:
        return check.schedule.next_due_at
    except CheckSchedule.DoesNotExist:
        return None


SPEC_FIELDS = (
    "id",
    "kind",
    "target",
    "timeout",
    "latency_threshold_ms",
    "options",
    "secrets",
    "interval",
    "state__last_ping_at",
)


def probe_spec(check: HealthCheck, state: CheckState | None) -> ProbeSpec:
    row = {name: getattr(check, name) for name in SPEC_FIELDS if "__" not in name}
    row["state__last_ping_at"] = state.last_ping_at if state else None
    return spec_from_row(row)


def spec_from_row(row: dict) -> ProbeSpec:
    """A probe spec from a plain row of SPEC_FIELDS (workers load a batch with values())."""
    secrets = encryption.decrypt(row["secrets"]) if row["secrets"] else {}
    options = row["options"]
    last_ping = row["state__last_ping_at"]
    return ProbeSpec(
        check_id=row["id"],
        kind=row["kind"],
        target=row["target"],
        timeout=row["timeout"],
        latency_threshold_ms=row["latency_threshold_ms"],
        method=options.get("method", "GET"),
        expected_status=tuple(options.get("expected_status", ())),
        headers=secrets.get("headers", {}),
        verify_tls=options.get("verify_tls", True),
        max_body_bytes=options.get("max_body_bytes", 65_536),
        max_redirects=options.get("max_redirects", 5),
        password=secrets.get("password", ""),
        last_ping_at=last_ping.timestamp() if last_ping else None,
        interval=float(row["interval"]),
        grace=float(options.get("grace", 0)),
    )


def describe(
    check: HealthCheck, state: CheckState | None, heartbeat_base: str = "", *, reveal: bool = False
) -> dict:
    """A check as the API shows it. The heartbeat URL is a credential (anyone holding it can
    report a beat or a failure): ``reveal`` it only to callers who may write the check."""
    from healthchecks.status import Status

    return {
        "name": check.name,
        "kind": check.kind,
        "target": check.target,
        "interval": check.interval,
        "timeout": check.timeout,
        "retries": check.retries,
        "latency_threshold_ms": check.latency_threshold_ms,
        "critical": check.is_critical,
        "enabled": check.enabled,
        "options": check.options,
        "has_secrets": bool(check.secrets),
        "heartbeat_url": f"{heartbeat_base}/health/heartbeat/{check.heartbeat_token}"
        if check.heartbeat_token and reveal
        else None,
        "status": Status(state.status).label if state else "unknown",
        "status_since": state.status_since if state else None,
        "consecutive_failures": state.consecutive_failures if state else 0,
        "last_result_at": state.last_result_at if state else None,
        "last_response_ms": state.last_response_us / 1000
        if state and state.last_response_us is not None
        else None,
        "last_outcome": state.last_outcome if state else {},
        "next_due_at": next_due_at(check),
    }

"""Check definitions: validation, planning (created / updated / unchanged / removed) and
writing -- the one write path of checks, for the API, the admin, the manifest and the portal's
own checks alike. Each entry point plans and validates, writes in one transaction, and audits
what it changed: ``put_one`` (one check, created or updated), ``delete_one``,
``replace_all`` (a service's whole set), and ``plan`` + ``write`` for a caller composing a
larger transaction (a manifest).
"""

import asyncio
import secrets as random_tokens
from dataclasses import dataclass, field

import pydantic
from django.db import transaction
from django.utils import timezone

from healthchecks.engine import recording, scheduling, service_health
from healthchecks.engine.specs import probe_spec
from healthchecks.models import CheckSchedule, CheckState, HealthCheck
from healthchecks.probes import KINDS, ProbeOutcome, probe, target_errors
from healthchecks.schemas import CheckFieldsIn, CheckIn
from healthchecks.status import Status
from portal import audit, encryption
from portal.auth import check_ownership
from portal.egress import NetworkPolicy
from portal.errors import InvalidInput, NotFound, field_path
from services.models import Service
from services.queries import get_service

SCALARS = ("kind", "target", "interval", "timeout", "retries", "latency_threshold_ms", "enabled")
AUDIT_ACTIONS = {"created": "check.create", "updated": "check.update", "removed": "check.delete"}


def definition_errors(state: dict, prefix: str = "") -> dict[str, str]:
    """Per-field reasons a definition (its stored form) cannot be used, beyond what its
    schema already checks: the timeout against the interval, and the target as its kind
    reads it (and, for network kinds, as the network policy judges it)."""
    errors: dict[str, str] = {}
    kind, target = KINDS[state["kind"]], state["target"]
    if state["timeout"] > state["interval"]:
        errors[f"{prefix}timeout"] = (
            f"{state['timeout']:g}s is longer than the interval ({state['interval']}s)"
        )
    if kind.network and not target:
        errors[f"{prefix}target"] = "required for this kind"
    elif kind.network or kind.check_target is not None:
        for name, reason in target_errors(kind.name, target).items():
            errors[f"{prefix}{name}"] = reason
    return errors


def desired_state(spec: CheckIn, existing: HealthCheck | None) -> dict:
    """The stored form of a definition: given fields replace, left-out ones are kept."""
    given = spec.model_fields_set
    current = stored_state(existing) if existing else None

    def keep(name: str) -> bool:
        return current is not None and name not in given

    state = {n: current[n] if keep(n) else getattr(spec, n) for n in SCALARS}
    state["is_critical"] = current["is_critical"] if keep("critical") else spec.critical
    kind = KINDS[spec.kind]
    state["options"] = {
        n: current["options"].get(n, getattr(spec, n)) if keep(n) else getattr(spec, n)
        for n in kind.option_names()
    }
    secrets = {n: current["secrets"].get(n) if keep(n) else getattr(spec, n) for n in kind.secrets}
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


def put_one(service_name: str, check_name: str, fields: CheckFieldsIn, actor) -> CheckPlan:
    """Create or update one check: fields given replace, fields left out keep their values;
    another kind than the stored one replaces the check whole."""
    check_ownership(actor, [service_name])
    spec = CheckIn(name=check_name, **fields.model_dump(exclude_unset=True))
    with transaction.atomic():
        service = _locked_service(service_name)
        existing = list(HealthCheck.objects.filter(service=service, name=check_name))
        plans, errors = plan([spec], existing, "")
        if errors:
            errors = {k.removeprefix("checks[0]."): v for k, v in errors.items()}
            raise InvalidInput("the check is not valid; nothing was changed", fields=errors)
        write(service.pk, service.name, plans, actor)
    return next(p for p in plans if p.outcome != "removed")


def delete_one(service_name: str, check_name: str, actor) -> None:
    check_ownership(actor, [service_name])
    with transaction.atomic():
        service = _locked_service(service_name)
        check = HealthCheck.objects.filter(service=service, name=check_name).first()
        if check is None:
            raise NotFound(f"{service_name!r} has no check named {check_name!r}")
        write(service.pk, service.name, [CheckPlan(check_name, "", check, None)], actor)


def replace_all(service_name: str, specs: list[CheckIn], actor) -> list[CheckPlan]:
    """Make a service's checks exactly ``specs`` (matched by name)."""
    with transaction.atomic():
        service = _locked_service(service_name)
        plans, errors = plan(specs, list(HealthCheck.objects.filter(service=service)), "")
        if errors:
            raise InvalidInput("the checks are not valid; nothing was changed", fields=errors)
        write(service.pk, service.name, plans, actor)
    return plans


def validate_one(service_name: str, check_name: str, fields: CheckFieldsIn) -> None:
    """What ``put_one`` would refuse, without writing (the admin's form shows it)."""
    spec = CheckIn(name=check_name, **fields.model_dump(exclude_unset=True))
    service = get_service(service_name)
    existing = list(HealthCheck.objects.filter(service=service, name=check_name))
    _, errors = plan([spec], existing, "")
    if errors:
        errors = {k.removeprefix("checks[0]."): v for k, v in errors.items()}
        raise InvalidInput("the check is not valid", fields=errors)


def fields_from(data: dict) -> CheckFieldsIn:
    """A check's fields from the model's (the admin's form): its options are fields of their
    own in the API's shape. Secrets are not among them, so they are kept."""
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidInput("options must be an object", fields={"options": "not an object"})
    values = {name: data[name] for name in SCALARS if name in data}
    values["critical"] = data.get("is_critical", True)
    try:
        return CheckFieldsIn(**values, **options)
    except pydantic.ValidationError as exc:
        raise InvalidInput(
            "the check is not valid",
            fields={field_path(e["loc"]): e["msg"] for e in exc.errors(include_url=False)},
        ) from None


def _locked_service(name: str) -> Service:
    """The service, its row locked: one writer of its checks at a time."""
    return get_service(name, queryset=Service.objects.select_for_update())


def write(
    service_id: int, service_name: str, plans: list[CheckPlan], actor, *, settle: bool = True
) -> bool:
    """Write plans (from ``plan``), with an audit row per check created, changed or removed
    (what changed is named; secrets by name only). Whether anything changed; if so the
    service's status follows at once (``settle_health``) unless the caller settles a batch."""
    now = timezone.now()
    removed = [p.existing.pk for p in plans if p.outcome == "removed"]
    HealthCheck.objects.filter(pk__in=removed).delete()
    entries = []
    for item in plans:
        if item.outcome in ("created", "updated"):
            save(service_id, item.name, item.state, item.existing, now)
        if item.outcome != "unchanged":
            changes = {"fields": item.changes} if item.outcome == "updated" else {}
            target = f"{service_name}/{item.name}"
            action = AUDIT_ACTIONS[item.outcome]
            entries.append(audit.entry(actor, action, "check", target, changes))
    audit.record_many(entries)
    if entries and settle:
        settle_health({service_id}, now)
    return bool(entries)


def settle_health(service_ids: set[int], now=None) -> None:
    """The services' status follows their checks' definitions now, not at their next result:
    a new check reads "waiting for first result", a check removed no longer counts."""
    if service_ids:
        service_health.recompute(set(service_ids), now)


def save(service_id: int, name: str, state: dict, existing: HealthCheck | None, now) -> HealthCheck:
    check = existing or HealthCheck(service_id=service_id, name=name, created_at=now)
    previous_interval = check.interval if existing else None
    for key in (*SCALARS, "is_critical", "options"):
        setattr(check, key, state[key])
    check.secrets = encryption.encrypt(state["secrets"]) if state["secrets"] else ""
    if KINDS[check.kind].pushed and not check.heartbeat_token:
        check.heartbeat_token = random_tokens.token_urlsafe(24)
    check.updated_at = now
    check.save()
    CheckState.objects.get_or_create(health_check=check)
    scheduling.reschedule(
        check, now, interval_changed=previous_interval not in (None, check.interval)
    )
    return check


def run_now(check: HealthCheck, actor) -> ProbeOutcome:
    """Probe a check now (not on its schedule), record the result like any other, and audit
    who asked: it is a person's act, and it writes history."""
    check_ownership(actor, [check.service.name])
    # The state as stored now, not as cached on ``check``: a heartbeat's last ping may have
    # come since the instance was loaded.
    spec = probe_spec(check, CheckState.objects.filter(health_check=check).first())
    started = timezone.now()
    outcome = asyncio.run(probe(spec, NetworkPolicy.from_settings()))
    CheckState.objects.get_or_create(health_check=check)
    recording.record([recording.Result(check.pk, started, started, outcome)])
    target = f"{check.service.name}/{check.name}"
    audit.record(actor, "check.run", "check", target, {"status": outcome.status.label})
    return outcome


def rotate_secrets(batch_size: int = 500) -> int:
    """Re-encrypt every check's secrets (headers, passwords) with the first key."""
    changed = 0
    rows = HealthCheck.objects.exclude(secrets="").order_by("pk").values_list("pk", "secrets")
    for pk, token in rows.iterator(chunk_size=batch_size):
        rotated = encryption.rotate(token)
        if rotated != token:
            HealthCheck.objects.filter(pk=pk).update(secrets=rotated)
            changed += 1
    return changed


def next_due_at(check: HealthCheck):
    """When the check runs next; None while it is disabled."""
    try:
        return check.schedule.next_due_at
    except CheckSchedule.DoesNotExist:
        return None


def describe(
    check: HealthCheck, state: CheckState | None, heartbeat_base: str = "", *, reveal: bool = False
) -> dict:
    """A check as the API shows it. The heartbeat URL is a credential (anyone holding it can
    report a beat or a failure): ``reveal`` it only to callers who may write the check."""
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

"""Items of a service's checklist the portal answers itself when the checklist starts: the
answer and its evidence are recorded as a tick by ``portal``, so the record says what was
true at that moment (a person may untick or re-tick later; both are kept)."""

from healthchecks.models import CheckState, ServiceHealth
from healthchecks.status import Status, is_usable
from services import configs, deployments
from services.models import Dependency, DependencyKind, Service


def dependencies_healthy(service: Service) -> tuple[bool, str]:
    """ "All services start successfully": every hard dependency usable now."""
    rows = list(
        Dependency.objects.filter(service=service, kind=DependencyKind.HARD)
        .order_by("depends_on__name")
        .values_list("depends_on__name", "depends_on__health__status")
    )
    if not rows:
        return True, "no hard dependencies"
    words = [f"{name} {Status(status or Status.UNKNOWN).label}" for name, status in rows]
    ok = all(is_usable(status or Status.UNKNOWN) for _, status in rows)
    return ok, "hard dependencies: " + ", ".join(words)


def checks_healthy(service: Service) -> tuple[bool, str]:
    rows = list(
        CheckState.objects.filter(health_check__service=service, health_check__enabled=True)
        .order_by("health_check__name")
        .values_list("health_check__name", "status")
    )
    if not rows:
        return False, "the service has no enabled checks"
    health = ServiceHealth.objects.filter(service=service).values_list("status", flat=True).first()
    words = ", ".join(f"{name} {Status(status).label}" for name, status in rows)
    ok = all(status == Status.HEALTHY for _, status in rows)
    overall = Status(health if health is not None else Status.UNKNOWN).label
    return ok, f"service {overall}; checks: {words}"


def config_valid(service: Service) -> tuple[bool, str]:
    """ "Configuration is loaded and validated": the current version passes its schema (if
    it has one) and is the one the last deployment applied (not drifting)."""
    version = configs.current_version(service)
    if version is None:
        return False, "no configuration version stored"
    schema = configs.current_schema(service)
    valid, issues = configs.validity_now(version, schema, configs.level_for(service))
    if schema is not None and valid is None:
        return False, f"version {version.version}: not validated ({', '.join(issues) or 'open'})"
    if schema is not None and not valid:
        return False, f"version {version.version} invalid: " + "; ".join(
            f"{path}: {why}" for path, why in list(issues.items())[:5]
        )
    said = (
        f"version {version.version} valid against the current schema"
        if schema is not None
        else f"version {version.version} stored; no schema to validate it against"
    )
    drift = deployments.drift(service)
    if drift["drifting"]:
        applied = drift["applied_version"] or "(unknown)"
        return False, f"{said}, but the last deployment applied version {applied}: not loaded"
    return True, said + (", and deployed" if drift["state"] == "in_sync" else "")


CHECKS = {
    "dependencies_healthy": dependencies_healthy,
    "checks_healthy": checks_healthy,
    "config_valid": config_valid,
}

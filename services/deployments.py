"""Deployments that pipelines report, and configuration drift.

A service drifts when the configuration its latest successful deployment applied is not
the current one (compared by content hash, so a rollback to identical content is no drift).
"""

from django.db import transaction
from django.db.models import OuterRef, Subquery

from portal import audit
from portal.auth import check_ownership
from portal.errors import InvalidInput
from services import registry, signals
from services.configs import current_version, get_service
from services.models import ConfigVersion, Deployment, DeploymentStatus, Service
from services.schemas import ServiceFieldsIn


def report(
    name: str,
    *,
    version: str,
    status: str,
    config_version: int | None,
    config_hash: str,
    link: str,
    actor,
) -> Deployment:
    check_ownership(actor, [name])
    with transaction.atomic():
        # The registry's lock before the service's row, as every write that may reach the
        # registry (this one sets deployed_version through it): one order, no deadlock.
        registry.lock_registry()
        service = get_service(name, lock=True)
        if config_version is not None:
            applied = service.config_versions.filter(version=config_version).first()
            if applied is None:
                raise InvalidInput(
                    "unknown configuration version",
                    fields={
                        "config_version": f"{name!r} has no configuration version {config_version}"
                    },
                )
            if config_hash and config_hash != applied.content_hash:
                raise InvalidInput(
                    "the hash does not match that version",
                    fields={
                        "config_hash": f"version {config_version} has hash {applied.content_hash}"
                    },
                )
            config_hash = applied.content_hash
        deployment = Deployment.objects.create(
            service=service,
            version=version,
            status=status,
            config_version=config_version,
            config_hash=config_hash,
            link=link,
            actor=str(actor),
        )
        if status in (DeploymentStatus.IN_PROGRESS, DeploymentStatus.SUCCEEDED):
            signals.deployment_reported.send(sender=Deployment, service_id=service.pk)
        if status == DeploymentStatus.SUCCEEDED and service.deployed_version != version:
            # Through the registry's one write path, so the change is audited like any other.
            registry.patch_service(name, ServiceFieldsIn(deployed_version=version), actor)
        audit.record(
            actor,
            "deployment.report",
            "service",
            name,
            {"version": version, "status": status, "config_version": config_version},
        )
    return deployment


def drift(service: Service) -> dict:
    current = current_version(service)
    deployed = (
        service.deployments.filter(status=DeploymentStatus.SUCCEEDED)
        .order_by("-created_at", "-id")
        .first()
    )
    applied_version = None
    if deployed is not None and deployed.config_hash:
        applied_version = deployed.config_version or (
            service.config_versions.filter(content_hash=deployed.config_hash)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
    if current is None or deployed is None:
        state = "unknown"
    elif not deployed.config_hash:
        state = "unknown"  # the deployment did not say which configuration it applied
    else:
        state = "in_sync" if deployed.config_hash == current.content_hash else "drifting"
    return {
        "service": service.name,
        "state": state,
        "drifting": state == "drifting",
        "current_version": current.version if current else None,
        "current_hash": current.content_hash if current else None,
        "applied_version": applied_version,
        "applied_hash": deployed.config_hash if deployed else None,
        "deployment": None
        if deployed is None
        else {
            "version": deployed.version,
            "status": deployed.status,
            "link": deployed.link,
            "created_at": deployed.created_at,
            "actor": deployed.actor,
        },
    }


def drifting_services() -> list[dict]:
    """Every service whose last successful deployment applied another configuration than
    the current one, in two queries whatever the number of services."""
    last_ok = Deployment.objects.filter(
        service=OuterRef("pk"), status=DeploymentStatus.SUCCEEDED
    ).order_by("-created_at", "-id")
    current = ConfigVersion.objects.filter(service=OuterRef("pk")).order_by("-version")
    rows = (
        Service.objects.annotate(
            applied_hash=Subquery(last_ok.values("config_hash")[:1]),
            applied_version=Subquery(last_ok.values("config_version")[:1]),
            deployed=Subquery(last_ok.values("version")[:1]),
            current_hash=Subquery(current.values("content_hash")[:1]),
            current_version=Subquery(current.values("version")[:1]),
        )
        .exclude(applied_hash__isnull=True)
        .exclude(applied_hash="")
        .exclude(current_hash__isnull=True)
        .order_by("name")
        .values(
            "name", "applied_hash", "applied_version", "deployed", "current_hash", "current_version"
        )
    )
    return [
        {
            "service": r["name"],
            "deployed_version": r["deployed"],
            "applied_version": r["applied_version"],
            "current_version": r["current_version"],
            "applied_hash": r["applied_hash"],
            "current_hash": r["current_hash"],
        }
        for r in rows
        if r["applied_hash"] != r["current_hash"]
    ]

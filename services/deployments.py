"""Deployments that pipelines report, and configuration drift.

A service drifts when the configuration its latest successful deployment applied is not
the current one (compared by content hash, so a rollback to identical content is no drift).
"""

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from portal import audit
from portal.auth import check_ownership, system_actor
from portal.errors import InvalidInput
from services import configs, registry, signals
from services.configs import current_version, get_service
from services.models import (
    ConfigVersion,
    Deployment,
    DeploymentStatus,
    Service,
    VerificationState,
)
from services.schemas import ServiceFieldsIn

VERIFIED_STATUSES = (DeploymentStatus.IN_PROGRESS, DeploymentStatus.SUCCEEDED)


def report(
    name: str,
    *,
    version: str,
    status: str,
    config_version: int | None,
    config_hash: str,
    link: str,
    actor,
    bake_seconds: int | None = None,
) -> tuple[Deployment, bool]:
    """Record a pipeline's report; (the deployment, whether it is new). A rollout that is
    under way or done is verified on the results recorded after it (state pending). A report
    of the version the service's latest deployment is verifying, or verified, is that same
    deployment -- its status moves, its verification stays one -- except a new ``in_progress``
    report after the verdict: a new rollout of that version, verified anew."""
    check_ownership(actor, [name])
    if not version.strip():
        raise InvalidInput(
            "the version names nothing", fields={"version": "empty once control characters are out"}
        )
    with transaction.atomic():
        # The registry's lock before the service's row, as every write that may reach the
        # registry (this one sets deployed_version through it): one order, no deadlock.
        registry.lock_registry()
        service = get_service(name, lock=True)
        config_hash = _applied_hash(service, config_version, config_hash)
        deployment = _same(service, version, status)
        created = deployment is None
        if deployment is None:
            verifying = status in VERIFIED_STATUSES
            deployment = Deployment.objects.create(
                service=service,
                version=version,
                status=status,
                config_version=config_version,
                config_hash=config_hash,
                link=link,
                actor=str(actor),
                bake_seconds=service.deploy_bake_seconds if bake_seconds is None else bake_seconds,
                verification_state=VerificationState.PENDING if verifying else "",
            )
        else:
            _move(deployment, status, config_version, config_hash, link)
        if created and deployment.verification_state == VerificationState.PENDING:
            _supersede(service, deployment, actor)
            signals.deployment_reported.send(
                sender=Deployment, service_id=service.pk, deployment_id=deployment.pk
            )
        if status == DeploymentStatus.SUCCEEDED and service.deployed_version != version:
            # Through the registry's one write path, so the change is audited like any other.
            registry.patch_service(name, ServiceFieldsIn(deployed_version=version), actor)
        audit.record(
            actor,
            "deployment.report",
            "service",
            name,
            {
                "deployment": deployment.pk,
                "version": version,
                "status": status,
                "config_version": config_version,
                "bake_seconds": deployment.bake_seconds,
            },
        )
    return deployment, created


def _supersede(service: Service, newer: Deployment, actor) -> None:
    """A newer rollout replaces what was being verified: the older verifications end, not
    verified (failed, blamed on nobody: nothing is rolled back, no event is sent), so a
    service has at most one pending verification and an old release's verdict never acts
    on the configuration of the one that replaced it."""
    older = list(
        service.deployments.filter(verification_state=VerificationState.PENDING)
        .exclude(pk=newer.pk)
        .values_list("pk", flat=True)
    )
    if not older:
        return
    Deployment.objects.filter(pk__in=older).update(
        verification_state=VerificationState.FAILED,
        verification_finished_at=timezone.now(),
        verification_reason=(
            f"superseded by deployment {newer.pk} ({newer.version[:100]}) before its verdict: "
            "not verified"
        ),
    )
    for pk in older:
        audit.record(
            actor,
            "deployment.verified",
            "service",
            service.name,
            {"deployment": pk, "state": "failed", "superseded_by": newer.pk},
        )


def _applied_hash(service: Service, config_version: int | None, config_hash: str) -> str:
    """The content hash of the configuration version the report names (422 if there is no
    such version, or the hash given is another)."""
    if config_version is None:
        return config_hash
    applied = service.config_versions.filter(version=config_version).first()
    if applied is None:
        raise InvalidInput(
            "unknown configuration version",
            fields={
                "config_version": f"{service.name!r} has no configuration version {config_version}"
            },
        )
    if config_hash and config_hash != applied.content_hash:
        raise InvalidInput(
            "the hash does not match that version",
            fields={"config_hash": f"version {config_version} has hash {applied.content_hash}"},
        )
    return applied.content_hash


def _same(service: Service, version: str, status: str) -> Deployment | None:
    """The service's latest deployment if this report is about it (see ``report``)."""
    latest = service.deployments.order_by("-created_at", "-id").first()
    if latest is None or latest.version != version or not latest.verification_state:
        return None
    if latest.verification_state != "pending" and status == DeploymentStatus.IN_PROGRESS:
        return None
    return latest


def _move(deployment: Deployment, status, config_version, config_hash, link) -> None:
    """A later report of a deployment being verified: its status (and what it adds) moves;
    a rollout the pipeline itself calls failed or rolled back is failed without waiting."""
    deployment.status = status
    deployment.config_version = config_version or deployment.config_version
    deployment.config_hash = config_hash or deployment.config_hash
    deployment.link = link or deployment.link
    fields = ["status", "config_version", "config_hash", "link"]
    failed = status not in VERIFIED_STATUSES and deployment.verification_state == "pending"
    if failed:
        deployment.verification_state = VerificationState.FAILED
        deployment.verification_finished_at = timezone.now()
        deployment.verification_reason = f"the pipeline reported the rollout {status}"
        fields += ["verification_state", "verification_finished_at", "verification_reason"]
    deployment.save(update_fields=fields)
    if failed:
        audit.record(
            system_actor("verification"),
            "deployment.verified",
            "service",
            deployment.service.name,
            {"deployment": deployment.pk, "version": deployment.version, "state": "failed"},
        )
        # Whether the release is to blame is health's to say (a hard dependency down
        # before it): None asks the listeners to find out.
        signals.deployment_verified.send(
            sender=Deployment, deployment=deployment, state="failed", blamed=None
        )


def record_verdict(
    deployment_id: int, state: str, reason: str, evidence: list, now, *, blamed: bool = True
) -> bool:
    """Store a verification's verdict, once: False if it was no longer pending (another
    worker judged it first, or the pipeline reported the rollout failed). ``blamed``: False
    when the failure may not be the release's (a hard dependency was down before it). Those
    listening (events, a configuration rollback) act inside this transaction: a verdict is
    never stored without them."""
    with transaction.atomic():
        # The service's row first, as a report takes it before the deployment's: a report of
        # the version being judged and its verdict then wait for each other, never deadlock.
        service_id = (
            Deployment.objects.filter(pk=deployment_id).values_list("service_id", flat=True).first()
        )
        if service_id is None:
            return False
        Service.objects.select_for_update().filter(pk=service_id).first()
        done = Deployment.objects.filter(pk=deployment_id, verification_state="pending").update(
            verification_state=state,
            verification_finished_at=now,
            verification_reason=reason,
            verification_evidence=evidence,
        )
        if not done:
            return False
        deployment = Deployment.objects.select_related("service").get(pk=deployment_id)
        audit.record(
            system_actor("verification"),
            "deployment.verified",
            "service",
            deployment.service.name,
            {"deployment": deployment_id, "version": deployment.version, "state": state},
        )
        signals.deployment_verified.send(
            sender=Deployment, deployment=deployment, state=state, blamed=blamed
        )
    return True


def rollback_config(deployment: Deployment, actor) -> str:
    """Restore the configuration version the service's last passed deployment before this
    one carried, as a new version naming the deployment (configs.rollback: audited,
    validated against the current schema). Returns what was done; InvalidInput (or any
    refusal of the configuration's write path) says why it was not."""
    if deployment.config_version is None:
        raise InvalidInput(
            "the deployment names no configuration version",
            fields={"config_version": "nothing to roll back from"},
        )
    previous = (
        Deployment.objects.filter(
            service_id=deployment.service_id,
            verification_state=VerificationState.PASSED,
            status__in=VERIFIED_STATUSES,  # not one its pipeline later reported failed
            config_version__isnull=False,
            created_at__lt=deployment.created_at,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if previous is None:
        raise InvalidInput(
            "no earlier passed deployment names a configuration version",
            fields={"config_version": "nothing to roll back to"},
        )
    name = deployment.service.name
    current = current_version(deployment.service)
    if current is not None and current.content_hash == previous.config_hash:
        return (
            f"configuration already at what {previous.version} carried (version {current.version})"
        )
    to_version = previous.config_version  # not null: the query asks for one
    assert to_version is not None
    _check_against_current_schema(deployment.service, to_version)
    comment = (
        f"rollback: deployment {deployment.pk} ({deployment.version}) failed verification; "
        f"the configuration of {previous.version}"
    )
    stored = configs.rollback(name, to_version, actor, comment=comment[:500]).version
    assert stored is not None  # not a dry run: a version, new or current
    return (
        f"configuration rolled back to version {to_version} "
        f"(what {previous.version} carried) as version {stored.version}"
    )


def _check_against_current_schema(service: Service, version: int) -> None:
    """A rollback restores only what the current schema accepts, whatever the service's
    validation level (a lenient service would store it marked invalid): InvalidInput
    naming each field otherwise (never quoting a secret)."""
    schema = configs.current_schema(service)
    if schema is None:
        return
    target = configs.get_version(service, version)
    issues = configs.validate(configs.reveal(target), schema, "strict").issues
    if issues:
        raise InvalidInput(
            f"version {version} does not match the current schema; nothing was stored",
            fields=issues,
        )


def note_progress(deployment_id: int, reason: str) -> None:
    """What a pending verification waits for (``waiting for http``), shown while it waits;
    a verdict stored meanwhile is left alone."""
    Deployment.objects.filter(pk=deployment_id, verification_state="pending").update(
        verification_reason=reason[:2000]
    )


def note_on_verdict(deployment_id: int, text: str) -> None:
    """Add what was done about a verdict (a rollback, or why none) to its reason."""
    deployment = Deployment.objects.get(pk=deployment_id)
    if text in deployment.verification_reason:
        return  # said already (a retried action)
    reason = f"{deployment.verification_reason}; {text}" if deployment.verification_reason else text
    Deployment.objects.filter(pk=deployment_id).update(verification_reason=reason[:2000])


def verification(deployment: Deployment) -> dict | None:
    """The verification as the API shows it; None for a report with nothing to verify."""
    if not deployment.verification_state:
        return None
    return {
        "state": deployment.verification_state,
        "started_at": deployment.created_at,
        "finished_at": deployment.verification_finished_at,
        "reason": deployment.verification_reason,
        "evidence": deployment.verification_evidence,
    }


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

"""Applying a manifest: the registry's part, each service's checks and configuration, in
one transaction -- all of it or nothing, every reason at once.

The registry (services.registry) and the health engine (healthchecks.checks) each plan,
validate, write and audit their own objects; this module only puts their steps in one
transaction, under the registry's lock, in one order: plan both, refuse if either refuses,
then write both. Configurations come last (manifest.config_section): their schema and values
are checked by the configuration's own write functions, against the schema the same
manifest may have just stored.
"""

from dataclasses import dataclass, field

from django.db import transaction

from healthchecks import checks
from healthchecks.models import HealthCheck
from manifest import config_section
from manifest.schemas import ManifestIn, ServiceIn
from portal.errors import InvalidInput
from services import registry
from services import schemas as registry_schemas
from services.models import Service

OUTCOMES = ("created", "updated", "unchanged")


@dataclass
class Outcome:
    registry: registry.ApplyResult
    checks: dict[str, list[checks.CheckPlan]]  # service name -> plans, when checks were given
    configs: dict[str, config_section.ConfigApplied] = field(default_factory=dict)
    dry_run: bool = False

    def checks_changed(self, name: str) -> bool:
        return any(p.outcome != "unchanged" for p in self.checks.get(name, []))

    def config_changed(self, name: str) -> bool:
        applied = self.configs.get(name)
        return applied is not None and (applied.changed or applied.schema_changed)

    def service_outcome(self, plan: registry.ServicePlan) -> str:
        if plan.outcome == "unchanged" and (
            self.checks_changed(plan.name) or self.config_changed(plan.name)
        ):
            return "updated"
        return plan.outcome

    def changed_fields(self, plan: registry.ServicePlan) -> list[str]:
        fields = set(plan.changes) | ({"checks"} if self.checks_changed(plan.name) else set())
        fields |= {"config"} if self.config_changed(plan.name) else set()
        if plan.outcome == "created":
            return []
        return sorted(fields)

    def as_dict(self) -> dict:
        result = {o: [] for o in OUTCOMES}
        for plan in self.registry.services:
            result[self.service_outcome(plan)].append(plan.name)
        teams = self.registry.teams
        result["teams"] = {o: [p.spec.name for p in teams if p.outcome == o] for o in OUTCOMES}
        result["dry_run"] = self.dry_run
        result["config"] = {name: c.as_dict() for name, c in self.configs.items()}
        return result


def apply(
    manifest: ManifestIn,
    actor,
    *,
    mode: registry.Mode = "upsert",
    single: bool = False,
    dry_run: bool = False,
) -> Outcome:
    """Apply a manifest atomically (``mode`` and ``single`` as services.registry).

    ``dry_run`` does all of it and then rolls it back: the plan it answers was checked by
    the very code that would write it (a configuration against the schema the same manifest
    brings), and nothing -- rows, audit entries, tasks queued on commit -- outlives it."""
    with transaction.atomic():
        registry.lock_registry()
        check_plans, errors = _plan_checks(manifest, single)
        result = registry.plan(
            _registry_part(manifest), mode=mode, single=single, more_errors=errors
        )
        registry.check_reach(result, actor)
        registry.write(result, actor)
        ids = dict(Service.objects.filter(name__in=check_plans).values_list("name", "id"))
        changed = {
            ids[name]
            for name, plans in check_plans.items()
            if checks.write(ids[name], name, plans, actor, settle=False)
        }
        checks.settle_health(changed)  # the statuses follow in one batch
        applied = config_section.write(config_section.sections(manifest, single), actor)
        if dry_run:
            transaction.set_rollback(True)
    return Outcome(result, check_plans, applied, dry_run)


def _registry_part(manifest: ManifestIn) -> registry_schemas.ManifestIn:
    """The manifest as the registry sees it: every item without its checks, with the same
    fields given (a field left out keeps its stored value)."""
    items = []
    for item in manifest.services:
        given = item.model_fields_set - {"checks", "config"}
        values = {name: getattr(item, name) for name in given}
        items.append(registry_schemas.ServiceIn.model_construct(_fields_set=given, **values))
    return registry.manifest_of(services=items, teams=manifest.teams)


def _plan_checks(manifest: ManifestIn, single: bool):
    """Plans for the services whose checks the manifest gives, and the reasons it cannot."""
    given = {
        i: item for i, item in enumerate(manifest.services) if "checks" in item.model_fields_set
    }
    existing: dict[str, list[HealthCheck]] = {item.name: [] for item in given.values()}
    for check in HealthCheck.objects.filter(service__name__in=existing).select_related("service"):
        existing[check.service.name].append(check)
    plans, errors = {}, {}
    for i, item in given.items():
        prefix = "" if single else f"services[{i}]."
        plans[item.name], found = checks.plan(item.checks, existing[item.name], prefix)
        errors.update(found)
    return plans, errors


def manifest_of(*, services=(), teams=()) -> ManifestIn:
    """A manifest around already-validated items (see services.registry.manifest_of)."""
    return ManifestIn.model_construct(services=list(services), teams=list(teams))


def upsert_service(name: str, fields, actor) -> Outcome:
    values = fields.model_dump(exclude_unset=True)
    if values.pop("name", name) != name:
        raise InvalidInput(
            "the body names another service than the path",
            fields={"name": f"must be {name!r} (the path) or left out"},
        )
    spec = _item(name, values)
    return apply(manifest_of(services=[spec]), actor, single=True)


def create_service(spec, actor) -> Outcome:
    return apply(manifest_of(services=[spec]), actor, mode="create", single=True)


def patch_service(name: str, fields, actor) -> Outcome:
    spec = _item(name, fields.model_dump(exclude_unset=True))
    return apply(manifest_of(services=[spec]), actor, mode="update", single=True)


def _item(name: str, values: dict) -> ServiceIn:
    return ServiceIn(name=name, **values)

"""Writing the registry: manifests, upserts, patches, deletes.

Every write goes through ``apply_manifest``: it first *plans* (validates every item, resolves
teams and dependencies, classifies each service as created / updated / unchanged, refuses a
cycle), and only when the whole plan is valid *writes* it in one transaction with bulk
statements. So a manifest is all or nothing, dependencies may point at services later in the
same manifest, and applying the same manifest twice changes nothing the second time.

The parts above the registry (a manifest with checks: the ``manifest`` app) use the same
steps -- ``lock_registry``, ``plan``, ``check_reach``, ``write`` -- inside a transaction of
their own, beside their own plans.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from django.db import connection, transaction
from django.utils import timezone

from portal import audit
from portal.auth import check_ownership
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.models import AuditEntry
from services import signals
from services.graph import DependencyGraph, format_cycle
from services.models import (
    Dependency,
    DependencyKind,
    LifecycleStatus,
    LifecycleTransition,
    Service,
    Tag,
    Team,
)
from services.queries import get_service
from services.schemas import DependencyIn, ManifestIn, ServiceIn, TeamIn

SCALAR_FIELDS = (
    "display_name",
    "description",
    "is_critical",
    "slo_target",
    "repository_url",
    "docs_url",
    "runbook_url",
    "deployed_version",
    "config_validation_level",
    "deploy_bake_seconds",
    "on_failed_verification",
)
TEAM_FIELDS = ("display_name", "description", "contact")
Mode = Literal["upsert", "create", "update"]
# Arbitrary constant naming the registry's advisory lock in PostgreSQL.
_REGISTRY_LOCK_ID = 0x5E2F1CE


def lock_registry() -> None:
    """Serialise graph writes, so two concurrent manifests cannot together form a cycle.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: writers are already serialised
    (the connection opens transactions IMMEDIATE).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REGISTRY_LOCK_ID])


@dataclass
class ServicePlan:
    name: str
    path: str  # where the item sits in the request, for error messages
    existing: Service | None
    team: str
    scalars: dict
    tags: list[str]
    dependencies: dict[str, str]
    changes: dict = field(default_factory=dict)  # field -> [old, new]
    old_dependencies: dict[str, str] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.existing is None:
            return "created"
        return "updated" if self.changes else "unchanged"


@dataclass
class TeamPlan:
    spec: TeamIn
    existing: Team | None
    changes: dict = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.existing is None:
            return "created"
        return "updated" if self.changes else "unchanged"


@dataclass
class ApplyResult:
    services: list[ServicePlan]
    teams: list[TeamPlan]

    def as_dict(self) -> dict:
        outcomes = ("created", "updated", "unchanged")
        result: dict[str, object] = {
            o: [p.name for p in self.services if p.outcome == o] for o in outcomes
        }
        result["teams"] = {o: [p.spec.name for p in self.teams if p.outcome == o] for o in outcomes}
        return result


def apply_manifest(
    manifest: ManifestIn, actor, *, mode: Mode = "upsert", single: bool = False
) -> ApplyResult:
    """Apply a manifest atomically. ``mode`` "create" refuses existing services, "update"
    refuses missing ones; ``single`` reports field paths without the ``services[0].`` prefix."""
    with transaction.atomic():
        lock_registry()
        result = plan(manifest, mode=mode, single=single)
        check_reach(result, actor)
        write(result, actor)
    return result


def plan(
    manifest: ManifestIn,
    *,
    mode: Mode = "upsert",
    single: bool = False,
    more_errors: dict[str, str] | None = None,
) -> "ApplyResult":
    """What applying ``manifest`` would do, or InvalidInput with every reason at once (and
    ``more_errors``: a composing caller's own, so the caller gets one answer). Call it under
    ``lock_registry``."""
    return _Planner(manifest, mode, single, more_errors or {}).plan()


def check_reach(result: "ApplyResult", actor) -> None:
    """What the plan changes must lie within the actor's reach and ownership.

    A caller limited to some services (a token with ``services``) changes only those: not
    teams, which other services share, and no dependency edge whose other end lies outside
    its reach -- an edge onto a service changes that service's dependents, its impact, and
    whether it may be deleted or stopped. A caller limited to teams (an operator, a token
    with ``teams``) changes only services its teams own, keeps them in those teams, and
    changes no other team. An operator's services may depend on anyone's: people read the
    whole estate, and the edge is a fact about their own service."""
    _check_ownership(result, actor)
    may_act_on = getattr(actor, "may_act_on", None)
    if may_act_on is None or getattr(actor, "services", None) is None:
        return
    teams = [plan.spec.name for plan in result.teams if plan.outcome != "unchanged"]
    if teams and getattr(actor, "teams", None) is None:
        raise Forbidden(
            f"{actor} is limited to services and may not change teams: {', '.join(teams)}",
            teams=teams,
        )
    outside = sorted(
        {
            other
            for plan in result.services
            for other, kind in plan.dependencies.items() ^ plan.old_dependencies.items()
            if not may_act_on(other)
        }
    )
    if outside:
        raise Forbidden(
            f"{actor} may not add or remove dependency edges to services outside its reach: "
            f"{', '.join(outside)}",
            services=outside,
        )


def _check_ownership(result: "ApplyResult", actor) -> None:
    if getattr(actor, "teams", None) is None:
        return
    for team in result.teams:
        if team.outcome != "unchanged" and not actor.may_change_team(team.spec.name):
            raise actor.ownership_denied(team=team.spec.name)
    for service in result.services:
        if service.outcome == "unchanged":
            continue
        if service.existing is not None and not actor.may_change(service.name):
            raise actor.ownership_denied(service.name)
        # A service made in, or moved into, a team: that team must be the actor's. (One the
        # actor may change and leaves where it is needs nothing more: a token limited to
        # services and teams changes the services it names, whatever their team.)
        into_team = service.existing is None or service.existing.team.name != service.team
        if into_team and not actor.may_change_team(service.team):
            raise actor.ownership_denied(team=service.team)


class _Planner:
    def __init__(self, manifest: ManifestIn, mode: Mode, single: bool, errors: dict):
        self.manifest = manifest
        self.mode = mode
        self.single = single
        self.errors: dict[str, str] = dict(errors)

    def path(self, index: int, attribute: str = "") -> str:
        base = "" if self.single else f"services[{index}]"
        if not attribute:
            return base or "name"
        return f"{base}.{attribute}" if base else attribute

    def plan(self) -> ApplyResult:
        teams = self.plan_teams()
        items = self.index_items()
        existing = {
            s.name: s
            for s in Service.objects.filter(name__in=items)
            .select_related("team")
            .prefetch_related("tags")
        }
        self.check_mode(items, existing)
        current_deps: dict[str, dict[str, str]] = defaultdict(dict)
        for service_name, dep_name, kind in Dependency.objects.filter(
            service__name__in=existing
        ).values_list("service__name", "depends_on__name", "kind"):
            current_deps[service_name][dep_name] = kind
        known_teams = set(
            Team.objects.filter(
                name__in={s.team for s in self.manifest.services if s.team}
            ).values_list("name", flat=True)
        ) | {t.spec.name for t in teams}
        plans = [
            self.plan_service(i, spec, existing.get(spec.name), current_deps, known_teams)
            for i, spec in enumerate(self.manifest.services)
        ]
        self.check_dependencies_exist(plans, items)
        if self.errors:
            raise InvalidInput(self.summary(), fields=self.errors)
        self.check_cycles(plans)
        return ApplyResult(services=plans, teams=teams)

    def summary(self) -> str:
        if self.single:
            return "the service is not valid; nothing was changed"
        return f"the manifest has {len(self.errors)} error(s); nothing was applied"

    def plan_teams(self) -> list[TeamPlan]:
        specs = self.manifest.teams
        existing = {t.name: t for t in Team.objects.filter(name__in=[t.name for t in specs])}
        seen: set[str] = set()
        plans = []
        for i, spec in enumerate(specs):
            if spec.name in seen:
                self.errors[f"teams[{i}].name"] = f"team {spec.name!r} appears twice"
                continue
            seen.add(spec.name)
            team = existing.get(spec.name)
            changes = {}
            if team is not None:
                for attr in sorted(set(TEAM_FIELDS) & spec.model_fields_set):
                    if getattr(team, attr) != getattr(spec, attr):
                        changes[attr] = [getattr(team, attr), getattr(spec, attr)]
            plans.append(TeamPlan(spec=spec, existing=team, changes=changes))
        return plans

    def index_items(self) -> dict[str, int]:
        items: dict[str, int] = {}
        for i, spec in enumerate(self.manifest.services):
            if spec.name in items:
                self.errors[self.path(i, "name")] = (
                    f"service {spec.name!r} appears twice (also services[{items[spec.name]}])"
                )
            else:
                items[spec.name] = i
        return items

    def check_mode(self, items: dict[str, int], existing: dict[str, Service]) -> None:
        if self.mode == "create":
            taken = [name for name in items if name in existing]
            if taken:
                raise Conflict(
                    f"already registered: {', '.join(taken)}",
                    code="already_exists",
                    services=taken,
                )
        if self.mode == "update":
            missing = [name for name in items if name not in existing]
            if missing:
                raise NotFound(f"no such service: {', '.join(missing)}")

    def plan_service(
        self, i: int, spec: ServiceIn, existing: Service | None, current_deps, known_teams: set[str]
    ) -> ServicePlan:
        given = spec.model_fields_set
        if spec.team is not None and spec.team not in known_teams:
            self.errors[self.path(i, "team")] = (
                f"unknown team {spec.team!r}; create it first or list it under 'teams'"
            )
        if existing is None and spec.team is None:
            self.errors[self.path(i, "team")] = "required for a new service"
        scalars = {
            attr: getattr(spec, attr)
            if attr in given or existing is None
            else getattr(existing, attr)
            for attr in SCALAR_FIELDS
        }
        team = spec.team or (existing.team.name if existing else "")
        if "tags" in given or existing is None:
            tags = sorted(set(spec.tags))
        else:
            tags = sorted(t.name for t in existing.tags.all())
        old_deps = current_deps.get(spec.name, {})
        if "dependencies" in given or existing is None:
            deps = self.normalise_dependencies(i, spec)
        else:
            deps = dict(old_deps)
        plan = ServicePlan(spec.name, self.path(i), existing, team, scalars, tags, deps)
        plan.old_dependencies = dict(old_deps)
        if existing is not None:
            plan.changes = self.diff(plan, existing, old_deps)
        return plan

    def normalise_dependencies(self, i: int, spec: ServiceIn) -> dict[str, str]:
        deps: dict[str, str] = {}
        for j, item in enumerate(spec.dependencies):
            name, kind = (
                (item.service, item.kind.value)
                if isinstance(item, DependencyIn)
                else (item, DependencyKind.HARD.value)
            )
            where = self.path(i, f"dependencies[{j}]")
            if name == spec.name:
                self.errors[where] = "a service cannot depend on itself"
            elif name in deps:
                self.errors[where] = f"{name!r} is listed twice"
            else:
                deps[name] = kind
        return deps

    @staticmethod
    def diff(plan: ServicePlan, existing: Service, old_deps: dict[str, str]) -> dict:
        changes = {
            attr: [getattr(existing, attr), value]
            for attr, value in plan.scalars.items()
            if getattr(existing, attr) != value
        }
        if existing.team.name != plan.team:
            changes["team"] = [existing.team.name, plan.team]
        old_tags = sorted(t.name for t in existing.tags.all())
        if old_tags != plan.tags:
            changes["tags"] = [old_tags, plan.tags]
        if old_deps != plan.dependencies:
            changes["dependencies"] = [old_deps, plan.dependencies]
        return changes

    def check_dependencies_exist(self, plans: list[ServicePlan], items: dict[str, int]) -> None:
        wanted = {dep for p in plans for dep in p.dependencies} - items.keys()
        found = set(Service.objects.filter(name__in=wanted).values_list("name", flat=True))
        for i, plan in enumerate(plans):
            for j, dep in enumerate(plan.dependencies):
                if dep not in items and dep not in found:
                    self.errors[self.path(i, f"dependencies[{j}]")] = (
                        f"unknown service {dep!r}; register it first or include it in the manifest"
                    )

    def check_cycles(self, plans: list[ServicePlan]) -> None:
        changed = [p for p in plans if p.existing is None or "dependencies" in p.changes]
        if not any(p.dependencies for p in changed):
            return  # removing edges or adding leaves cannot close a cycle
        graph = DependencyGraph.load()
        for plan in changed:
            graph.set_dependencies(plan.name, plan.dependencies)
        cycle = graph.find_cycle(start=[p.name for p in changed])
        if cycle:
            by_name = {p.name: p for p in changed}
            culprit = next((by_name[n] for n in cycle if n in by_name), changed[0])
            where = f"{culprit.path}.dependencies" if culprit.path != "name" else "dependencies"
            message = f"dependency cycle: {format_cycle(cycle)}"
            raise InvalidInput(
                message, code="dependency_cycle", fields={where: message}, cycle=cycle
            )


def write(result: ApplyResult, actor) -> None:
    """Write a plan (from ``plan``, under ``lock_registry``), with its audit rows."""
    now = timezone.now()
    entries: list[AuditEntry] = []
    _write_teams(result.teams, actor, entries)
    teams = {t.name: t for t in Team.objects.filter(name__in={p.team for p in result.services})}
    created = [p for p in result.services if p.outcome == "created"]
    updated = [p for p in result.services if p.outcome == "updated"]
    new_rows = [
        Service(
            name=p.name,
            team=teams[p.team],
            created_at=now,
            updated_at=now,
            lifecycle_changed_at=now,
            **p.scalars,
        )
        for p in created
    ]
    Service.objects.bulk_create(new_rows, batch_size=1000)
    _update_rows(updated, teams, now)
    ids = dict(
        Service.objects.filter(
            name__in={p.name for p in result.services}
            | {d for p in result.services for d in p.dependencies}
        ).values_list("name", "id")
    )
    _write_tags(
        [p for p in created + updated if p.outcome == "created" or "tags" in p.changes], ids
    )
    rewired = [
        p for p in created + updated if p.outcome == "created" or "dependencies" in p.changes
    ]
    _write_dependencies(rewired, ids, now)
    LifecycleTransition.objects.bulk_create(
        [
            LifecycleTransition(
                service_id=ids[p.name],
                from_status="",
                to_status=LifecycleStatus.REGISTERED,
                reason="registered",
                actor=str(actor),
                created_at=now,
            )
            for p in created
        ],
        batch_size=1000,
    )
    for plan in created:
        entries.append(
            audit.entry(
                actor,
                "service.create",
                "service",
                plan.name,
                {
                    "team": plan.team,
                    **plan.scalars,
                    "tags": plan.tags,
                    "dependencies": plan.dependencies,
                },
            )
        )
    for plan in updated:
        entries.append(audit.entry(actor, "service.update", "service", plan.name, plan.changes))
    audit.record_many(entries)
    if rewired:
        signals.dependencies_changed.send(
            sender=Service, service_ids={ids[p.name] for p in rewired}
        )


def _write_teams(plans: list[TeamPlan], actor, entries: list) -> None:
    new = [
        Team(name=p.spec.name, **{a: getattr(p.spec, a) for a in TEAM_FIELDS})
        for p in plans
        if p.outcome == "created"
    ]
    Team.objects.bulk_create(new)
    for plan in plans:
        if plan.outcome == "updated" and plan.existing is not None:  # updated: it exists
            for attr, (_, value) in plan.changes.items():
                setattr(plan.existing, attr, value)
            plan.existing.save(update_fields=list(plan.changes))
        if plan.outcome != "unchanged":
            entries.append(
                audit.entry(
                    actor, f"team.{plan.outcome[:-1]}", "team", plan.spec.name, plan.changes
                )
            )


def _update_rows(plans: list[ServicePlan], teams: dict[str, Team], now) -> None:
    rows = []
    for plan in plans:
        row = plan.existing
        if row is None:  # never: a plan to update has its row (ServicePlan.outcome)
            continue
        for attr, value in plan.scalars.items():
            setattr(row, attr, value)
        row.team = teams[plan.team]
        row.updated_at = now
        rows.append(row)
    if rows:
        Service.objects.bulk_update(rows, [*SCALAR_FIELDS, "team", "updated_at"], batch_size=500)


def _write_tags(plans: list[ServicePlan], ids: dict[str, int]) -> None:
    if not plans:
        return
    wanted = {t for p in plans for t in p.tags}
    Tag.objects.bulk_create([Tag(name=t) for t in wanted], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(name__in=wanted).values_list("name", "id"))
    through = Service.tags.through
    through.objects.filter(service_id__in=[ids[p.name] for p in plans]).delete()
    through.objects.bulk_create(
        [through(service_id=ids[p.name], tag_id=tag_ids[t]) for p in plans for t in p.tags],
        batch_size=2000,
    )


def _write_dependencies(plans: list[ServicePlan], ids: dict[str, int], now) -> None:
    if not plans:
        return
    Dependency.objects.filter(service_id__in=[ids[p.name] for p in plans]).delete()
    Dependency.objects.bulk_create(
        [
            Dependency(service_id=ids[p.name], depends_on_id=ids[dep], kind=kind, created_at=now)
            for p in plans
            for dep, kind in p.dependencies.items()
        ],
        batch_size=2000,
    )


# --- Single-service operations, all through the same planner ---------------------------------


def manifest_of(*, services=(), teams=()) -> ManifestIn:
    """A manifest around already-validated items. model_construct keeps the items as they
    are: validating again would mark every field as given, and "left out keeps its value"
    depends on knowing which fields were."""
    return ManifestIn.model_construct(services=list(services), teams=list(teams))


def upsert_service(name: str, fields, actor) -> ServicePlan:
    values = fields.model_dump(exclude_unset=True)
    if values.pop("name", name) != name:
        raise InvalidInput(
            "the body names another service than the path",
            fields={"name": f"must be {name!r} (the path) or left out"},
        )
    spec = ServiceIn(name=name, **values)
    return apply_manifest(manifest_of(services=[spec]), actor, single=True).services[0]


def create_service(spec: ServiceIn, actor) -> ServicePlan:
    return apply_manifest(manifest_of(services=[spec]), actor, mode="create", single=True).services[
        0
    ]


def patch_service(name: str, fields, actor) -> ServicePlan:
    spec = ServiceIn(name=name, **fields.model_dump(exclude_unset=True))
    return apply_manifest(manifest_of(services=[spec]), actor, mode="update", single=True).services[
        0
    ]


def set_dependency(name: str, depends_on: str, kind: str, actor) -> ServicePlan:
    deps = current_dependencies(name)
    deps[depends_on] = kind
    return _replace_dependencies(name, deps, actor)


def remove_dependency(name: str, depends_on: str, actor) -> ServicePlan:
    deps = current_dependencies(name)
    if depends_on not in deps:
        raise NotFound(f"{name!r} does not depend on {depends_on!r}")
    del deps[depends_on]
    return _replace_dependencies(name, deps, actor)


def current_dependencies(name: str) -> dict[str, str]:
    get_service(name)
    return dict(
        Dependency.objects.filter(service__name=name).values_list("depends_on__name", "kind")
    )


def _replace_dependencies(name: str, deps: dict[str, str], actor) -> ServicePlan:
    items: list[str | DependencyIn] = [
        DependencyIn(service=d, kind=DependencyKind(k)) for d, k in sorted(deps.items())
    ]
    spec = ServiceIn(name=name, dependencies=items)
    return apply_manifest(manifest_of(services=[spec]), actor, mode="update", single=True).services[
        0
    ]


def delete_team(name: str, actor) -> None:
    """Delete a team that no service belongs to (409 naming them otherwise)."""
    with transaction.atomic():
        lock_registry()
        team = Team.objects.filter(name=name).first()
        if team is None:
            raise NotFound(f"no team named {name!r}")
        members = sorted(team.services.values_list("name", flat=True))
        if members:
            raise Conflict(
                f"team {name!r} still has services: {', '.join(members)}; move them first",
                code="has_services",
                services=members,
            )
        team.delete()
        audit.record(actor, "team.delete", "team", name)


def delete_service(name: str, actor) -> None:
    check_ownership(actor, [name])
    with transaction.atomic():
        lock_registry()
        service = get_service(name)
        dependents = list(
            Dependency.objects.filter(depends_on=service)
            .order_by("service__name")
            .values_list("service__name", "kind")
        )
        if dependents:
            names = [n for n, _ in dependents]
            raise Conflict(
                f"{name!r} is needed by {', '.join(names)}; remove those dependencies first",
                code="has_dependents",
                dependents=[{"service": n, "kind": k} for n, k in dependents],
            )
        # Audited first: the entry is of the service's team, which is found through it.
        audit.record(actor, "service.delete", "service", name)
        service.delete()

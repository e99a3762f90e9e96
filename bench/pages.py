"""Pages benchmark: the overview (and its HTMX refresh), a service's page and the dependency
map, with 1,000 services and 90 days of rollups, through a real HTTP server.

Targets (issue 11), with 1,000 services and 90 days of rollups: the overview's full page p99
under 150 ms and its refresh fragment (``HX-Request: true``) under 50 ms; a service's page
(``/services/<name>/``) with 90 days of history under 100 ms; the map (``/map/``) at 1,000
services under 300 ms (beyond 200 services it draws teams; ``/map/?team=`` with 50-100
services shown is timed too); the overview's query count independent of the number of
services shown.

Works on its own database (``portal_bench_pages``, recreated each run on DATABASE_URL's
server). Application modules are imported inside functions: they may only be imported once
``support.setup_django`` has pointed Django at that database.
"""

import functools
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from http.client import HTTPConnection
from http.cookies import SimpleCookie
from unittest import mock
from urllib.parse import quote, urlencode

from bench import support

NAME = "pages"
DESCRIPTION = "overview (and its HTMX refresh), a service's page and the map at 1,000 services"
DATABASE = "portal_bench_pages"
SEED = 20240611
HARD_SHARE = 0.7  # the rest of the dependencies are soft
# Direct dependencies of a service (mean 2.5); the first service has none.
DEPENDENCY_COUNTS = (0, 1, 1, 2, 2, 3, 3, 4, 4, 5)
CHECK_INTERVAL = 30  # seconds: what the rollups' counts stand for
USERNAME = "bench-viewer"
PASSWORD = "bench-viewer-not-a-secret-7"  # a throwaway user of a throwaway database
HX = {"HX-Request": "true"}
ROW_MARK = b'data-service="'  # one per row of the overview's table

CHUNK = 250  # requests measured between two waits for an idle machine (--wait-idle)
Settle = Callable[[], None]

TARGETS = {
    "overview_p99_ms": 150.0,
    "fragment_p99_ms": 50.0,
    "service_p99_ms": 100.0,
    "map_p99_ms": 300.0,
}


@dataclass(frozen=True)
class Shape:
    services: int
    teams: int
    requests: int  # measured requests per page (overview, fragment, service pages)
    map_requests: int  # measured requests per map
    other_requests: int  # wall and maintenance
    warmup: int
    service_sample: int  # distinct services the service page goes through
    repeats: int  # in-process timings of each part ("where the time goes")


FULL = Shape(1_000, 20, 1_000, 500, 250, 20, 100, 20)
QUICK = Shape(200, 10, 50, 20, 20, 5, 20, 3)


@dataclass
class Dataset:
    shape: Shape
    names: list[str]
    teams: list[str]
    team_of: list[int]
    edges: list[tuple[int, int, str]]
    statuses: list[int]
    hub: str  # the service with the most direct dependents
    most_hard: str  # the service with the most hard dependencies
    leaf: str  # a service with no dependency and no dependent (or the fewest)
    map_team: str  # the team whose map shows closest to 75 services
    map_team_shown: int
    service_sample: list[str]
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0


def run(options) -> None:
    shape = QUICK if options.quick else FULL
    rng = random.Random(SEED)
    print(
        f"pages benchmark: {shape.services:,} services in {shape.teams} teams, 90 days of rollups"
    )
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.setup_django(url)

    dataset = seed(shape, rng)
    print(f"seeded in {dataset.seconds:.1f} s: {dataset.counts}", flush=True)
    user = make_user()
    settle = functools.partial(support.settle, options.wait_idle)
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "dataset": describe(dataset),
        "targets": TARGETS,
        "wait_idle_s": options.wait_idle,
    }
    print("counting queries in-process ...", flush=True)
    results["queries"] = count_queries(dataset, user)
    print("timing the parts in-process ...", flush=True)
    results["parts_in_process"] = time_parts(dataset, user, settle)
    close_django_connections()

    print("starting gunicorn ...", flush=True)
    # LOG_LEVEL=info: the access log's duration_ms gives the time spent inside Django.
    env = support.app_env(url, LOG_LEVEL="info")
    with support.gunicorn(url, workers=2, env=env) as server:
        client = PageClient(server.port)
        login(client)
        results["server"] = {"workers": 2, "worker_class": "sync", "clients": 1}
        print(f"timing pages through http://127.0.0.1:{server.port} ...", flush=True)
        results["http"] = time_http(client, dataset, settle)
        add_app_times(results["http"], server.log_path.read_text(errors="replace"))
        client.close()

    results["verdicts"] = verdicts(results)
    support.finish(NAME, results, report, quick=options.quick, smoke="on a small dataset")


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


# --- Dataset ----------------------------------------------------------------------------------


def service_name(index: int) -> str:
    return f"svc-{index:04d}"


def assign_teams(shape: Shape, rng: random.Random) -> list[int]:
    """Team index of each service. The first services are shared infrastructure (many
    depend on them) and belong to team 0, the platform team."""
    platform = max(3, shape.services // 50)
    return [0 if i < platform else rng.randrange(shape.teams) for i in range(shape.services)]


def random_edges(
    shape: Shape, rng: random.Random, team_of: list[int]
) -> list[tuple[int, int, str]]:
    """Each service depends on 0-5 services of *lower* index (so the graph is acyclic):
    60% of its own team, 20% on the platform's services, 20% on any; HARD_SHARE hard."""
    platform = max(3, shape.services // 50)
    members: dict[int, list[int]] = defaultdict(list)
    pairs: set[tuple[int, int]] = set()
    for i in range(shape.services):
        same = members[team_of[i]]
        for _ in range(rng.choice(DEPENDENCY_COUNTS) if i else 0):
            draw = rng.random()
            if draw < 0.6 and same:
                pairs.add((i, rng.choice(same)))
            elif draw < 0.8:
                pairs.add((i, rng.randrange(min(i, platform))))
            else:
                pairs.add((i, rng.randrange(i)))
        same.append(i)
    return [(s, d, "hard" if rng.random() < HARD_SHARE else "soft") for s, d in sorted(pairs)]


def status_history(
    rng: random.Random, current: int, now: datetime, created: datetime
) -> list[tuple[datetime, int, int]]:
    """A service's status changes (at, from, to) in time order, ending in ``current``: a few
    over the 90 days, and for about a third of the services some in the last 24 hours (so the
    overview's status strips show them). A service not healthy now has at least one."""
    from healthchecks.status import Status

    older = rng.choice((0, 0, 0, 1, 1, 2, 3))
    recent = rng.choice((0, 0, 0, 0, 0, 0, 1, 2, 3, 4))
    if current != Status.HEALTHY and older + recent == 0:
        recent = 1
    day = timedelta(days=1)
    times = sorted(now - rng.uniform(1, 89) * day for _ in range(older))
    times += sorted(
        now - rng.uniform(60, 23.5 * 3600) * timedelta(seconds=1) for _ in range(recent)
    )
    times = sorted(max(t, created + timedelta(minutes=1)) for t in times)
    statuses = [current]
    bad = (Status.DEGRADED, Status.UNHEALTHY, Status.UNHEALTHY, Status.MAINTENANCE)
    for _ in times:  # backwards from the current status
        statuses.append(rng.choice(bad) if statuses[-1] == Status.HEALTHY else Status.HEALTHY)
    statuses.reverse()
    return [(at, statuses[n], statuses[n + 1]) for n, at in enumerate(times)]


def seed(shape: Shape, rng: random.Random) -> Dataset:
    """Bulk-insert the registry, checks with their state, service health, status changes,
    incidents, a maintenance window and 90 days of rollups, in one transaction; then
    VACUUM ANALYZE."""
    from django.db import connection, transaction
    from django.utils import timezone

    from healthchecks.status import Status

    started = time.perf_counter()
    now = timezone.now()
    created = now - timedelta(days=120)  # older than every window: fully observed
    team_of = assign_teams(shape, rng)
    edges = random_edges(shape, rng, team_of)
    weights = {
        Status.HEALTHY: 85,
        Status.DEGRADED: 6,
        Status.UNHEALTHY: 4,
        Status.MAINTENANCE: 2,
        Status.UNKNOWN: 3,
    }
    statuses = rng.choices(list(weights), weights=list(weights.values()), k=shape.services)
    with transaction.atomic():
        teams, services = seed_registry(shape, rng, team_of, edges, created)
        checks = seed_checks(services, statuses, rng, now, created)
        counts = seed_health(services, checks, statuses, rng, now, created)
        counts["rollups"] = synthetic_rollups([c.pk for c in checks], rng, days=90, hours=48)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # fresh statistics, as a live database would have
    names = [s.name for s in services]
    return Dataset(
        shape=shape,
        names=names,
        teams=[t.name for t in teams],
        team_of=team_of,
        edges=edges,
        statuses=statuses,
        **pick_subjects(shape, names, team_of, edges, rng),
        counts={
            "services": len(services),
            "dependencies": len(edges),
            "hard_dependencies": sum(1 for e in edges if e[2] == "hard"),
            "checks": len(checks),
            **counts,
            **{f"health_{Status(k).label}": v for k, v in sorted(Counter(statuses).items())},
        },
        seconds=time.perf_counter() - started,
    )


def seed_registry(shape: Shape, rng: random.Random, team_of, edges, created) -> tuple[list, list]:
    """Teams (the first one "platform"), tags, services and their dependencies."""
    from services.models import Dependency, LifecycleStatus, Service, Tag, Team

    lifecycle = [LifecycleStatus.RUNNING] * 8 + [LifecycleStatus.DEGRADED, LifecycleStatus.STOPPED]
    teams = Team.objects.bulk_create(
        Team(
            name="platform" if t == 0 else f"team-{t:02d}",
            display_name="Platform" if t == 0 else f"Team {t}",
            contact=f"#team-{t:02d}",
        )
        for t in range(shape.teams)
    )
    tags = Tag.objects.bulk_create(Tag(name=f"tag-{t:02d}") for t in range(15))
    services = Service.objects.bulk_create(
        (
            Service(
                name=service_name(i),
                display_name=f"Service {i}",
                description=f"Benchmark service {i}; seeded, not real.",
                team=teams[team_of[i]],
                is_critical=rng.random() < 0.1,
                repository_url=f"https://git.example.internal/{service_name(i)}",
                runbook_url=f"https://docs.example.internal/runbooks/{service_name(i)}",
                deployed_version=f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.0",
                lifecycle_status=rng.choice(lifecycle),
                lifecycle_changed_at=created,
                created_at=created,
                updated_at=created,
            )
            for i in range(shape.services)
        ),
        batch_size=2000,
    )
    through = Service.tags.through
    through.objects.bulk_create(
        (
            through(service_id=s.id, tag_id=tag.id)
            for s in services
            for tag in rng.sample(tags, rng.randint(0, 3))
        ),
        batch_size=5000,
    )
    Dependency.objects.bulk_create(
        (
            Dependency(
                service_id=services[s].id, depends_on_id=services[d].id, kind=kind,
                created_at=created,
            )
            for s, d, kind in edges
        ),
        batch_size=5000,
    )  # fmt: skip
    return teams, services


def seed_checks(services: list, statuses: list[int], rng: random.Random, now, created) -> list:
    """One or two checks per service (http, critical; tcp), each with a CheckState that
    agrees with its service's status: the http check of a degraded or unhealthy service is
    degraded or unhealthy, every check of an unknown one has no result."""
    from healthchecks.models import CheckState, HealthCheck
    from healthchecks.status import ErrorCode, Status

    kinds = (
        ("http", "http", "https://{}.example.internal/health"),
        ("tcp", "tcp", "{}.example.internal:5432"),
    )
    checks = HealthCheck.objects.bulk_create(
        (
            HealthCheck(
                service=s, name=name, kind=kind, target=target.format(s.name),
                interval=CHECK_INTERVAL, timeout=5.0, is_critical=name == "http",
                created_at=created, updated_at=created,
            )
            for s in services
            for name, kind, target in kinds[: rng.choice((1, 2))]
        ),
        batch_size=2000,
    )  # fmt: skip
    status_of = {s.id: statuses[i] for i, s in enumerate(services)}
    outcomes = {
        Status.UNHEALTHY: {"errors": ["connection refused"]},
        Status.DEGRADED: {"warnings": ["slower than the latency threshold"]},
    }
    states = []
    for check in checks:
        service_status = status_of[check.service_id]
        state = Status.HEALTHY
        if service_status == Status.UNKNOWN:
            state = Status.UNKNOWN
        elif check.name == "http" and service_status in (Status.DEGRADED, Status.UNHEALTHY):
            state = service_status
        seen = None if state == Status.UNKNOWN else now - timedelta(seconds=rng.uniform(0, 30))
        failing = state == Status.UNHEALTHY
        states.append(
            CheckState(
                health_check=check,
                status=state,
                raw_status=state,
                consecutive_failures=3 if failing else 0,
                status_since=now - timedelta(hours=rng.uniform(1, 500)),
                last_due_at=seen,
                last_result_at=seen,
                last_response_us=None if seen is None else rng.randint(800, 250_000),
                last_error_code=ErrorCode.REFUSED if failing else ErrorCode.NONE,
                last_outcome=outcomes.get(state, {}),
            )
        )
    CheckState.objects.bulk_create(states, batch_size=2000)
    return checks


def seed_health(
    services: list, checks: list, statuses: list[int], rng: random.Random, now, created
) -> dict:
    """ServiceHealth rows, status changes (the service's, and its http check's where the
    check's status changed too), incidents, and an open maintenance window for the services
    in maintenance. Returns what it made, counted."""
    from healthchecks.models import Incident, ServiceHealth, StatusChange
    from healthchecks.status import Status
    from services.models import MaintenanceWindow

    http_check = {c.service_id: c for c in checks if c.name == "http"}
    reasons = {
        Status.DEGRADED: "check http slower than its threshold",
        Status.UNHEALTHY: "critical check http failing: connection refused",
        Status.MAINTENANCE: "maintenance window open",
        Status.UNKNOWN: "no recent result",
    }
    observed = {Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY}
    health, changes, incidents = [], [], []
    for s, status in zip(services, statuses, strict=True):
        history = status_history(rng, status, now, created)
        for at, old, new in history:
            cause = reasons.get(new, "all checks healthy")
            changes.append(
                StatusChange(service=s, from_status=old, to_status=new, at=at, processed_at=at,
                             cause=cause)
            )  # fmt: skip
            if {old, new} <= observed:
                changes.append(
                    StatusChange(service=s, health_check=http_check[s.id], from_status=old,
                                 to_status=new, at=at, processed_at=at)
                )  # fmt: skip
        incidents += incidents_of(s, history)
        health.append(
            ServiceHealth(
                service=s,
                status=status,
                since=history[-1][0] if history else created,
                reason=reasons.get(status, ""),
                updated_at=now,
            )
        )
    ServiceHealth.objects.bulk_create(health, batch_size=2000)
    StatusChange.objects.bulk_create(changes, batch_size=5000)
    Incident.objects.bulk_create(incidents, batch_size=5000)
    resting = [
        s for s, status in zip(services, statuses, strict=True) if status == Status.MAINTENANCE
    ]
    if resting:
        window = MaintenanceWindow.objects.create(
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=2),
            reason="database upgrade (benchmark)",
            created_by="bench",
        )
        window.services.set(resting)
    day_ago = now - timedelta(hours=24)
    return {
        "status_changes": len(changes),
        "status_changes_last_24h": sum(1 for c in changes if c.at >= day_ago),
        "services_changed_last_24h": len({c.service_id for c in changes if c.at >= day_ago}),
        "incidents": len(incidents),
        "open_incidents": sum(1 for n in incidents if n.closed_at is None),
        "in_maintenance": len(resting),
    }


def incidents_of(service, history: list[tuple[datetime, int, int]]) -> list:
    """An incident for each stretch the history spends degraded or unhealthy; the current
    one, if any, is open."""
    from healthchecks.models import Incident
    from healthchecks.status import Status

    bad = (Status.DEGRADED, Status.UNHEALTHY)
    found, opened, worst = [], None, None
    for at, old, new in history:
        if new in bad and old not in bad:
            opened, worst = at, new
        elif new in bad and opened is not None:
            worst = max(worst, new)
        elif new not in bad and opened is not None:
            found.append(Incident(service=service, opened_at=opened, closed_at=at,
                                  worst_status=worst, cause="seeded"))  # fmt: skip
            opened = None
    if opened is not None:
        found.append(
            Incident(service=service, opened_at=opened, worst_status=worst, cause="seeded")
        )
    return found


def pick_subjects(
    shape: Shape, names: list[str], team_of: list[int], edges, rng: random.Random
) -> dict:
    """The services and team the pages are asked about."""
    dependents = Counter(d for _, d, _ in edges)
    hard = Counter(s for s, _, k in edges if k == "hard")
    linked = Counter(s for s, _, _ in edges) + dependents
    # The team map shows the team's services and their direct neighbours (faded).
    shown = {}
    for team in range(shape.teams):
        own = {i for i, t in enumerate(team_of) if t == team}
        near = {d for s, d, _ in edges if s in own} | {s for s, d, _ in edges if d in own}
        shown[team] = len(own | near)
    map_team = min(range(1, shape.teams), key=lambda t: (abs(shown[t] - 75), t))
    leaf = min(range(len(names)), key=lambda i: (linked[i], i))
    return {
        "hub": names[dependents.most_common(1)[0][0]],
        "most_hard": names[hard.most_common(1)[0][0]],
        "leaf": names[leaf],
        "map_team": "platform" if map_team == 0 else f"team-{map_team:02d}",
        "map_team_shown": shown[map_team],
        "service_sample": rng.sample(names, min(shape.service_sample, len(names))),
    }


def synthetic_rollups(ids: list[int], rng: random.Random, *, days: int, hours: int) -> int:
    """Daily rollups for the ``days`` days before today and hourly ones for the last
    ``hours`` hours, as checks at a CHECK_INTERVAL-second interval would leave: mostly
    healthy, a few failures, latency histograms over history.BUCKETS (after
    bench.health.history.synthetic_rollups)."""
    from django.utils import timezone

    from healthchecks.models import CheckRollup
    from healthchecks.reads.history import BUCKETS

    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    buckets = len(BUCKETS) + 1

    def rollup(check_id: int, granularity: int, start: datetime, count: int) -> CheckRollup:
        failures = rng.choice([0, 0, 0, 0, 1, 2, 5, 30])
        histogram = [0] * buckets
        histogram[3] = count // 2
        histogram[4] = count // 3
        histogram[6] = count - histogram[3] - histogram[4]
        return CheckRollup(
            health_check_id=check_id,
            granularity=granularity,
            start=start,
            count=count,
            failures=min(failures, count),
            degraded=0,
            latency_sum_us=count * rng.randint(3_000, 40_000),
            latency_max_us=rng.randint(50_000, 900_000),
            histogram=histogram,
        )

    def rows():
        per_day, per_hour = 86_400 // CHECK_INTERVAL, 3_600 // CHECK_INTERVAL
        for check_id in ids:
            for d in range(1, days + 1):
                yield rollup(check_id, CheckRollup.DAY, today - timedelta(days=d), per_day)
            for h in range(1, hours + 1):
                yield rollup(check_id, CheckRollup.HOUR, hour - timedelta(hours=h), per_hour)

    inserted, batch = 0, []
    for row in rows():
        batch.append(row)
        if len(batch) == 10_000:
            CheckRollup.objects.bulk_create(batch)
            inserted += len(batch)
            batch = []
    CheckRollup.objects.bulk_create(batch)
    return inserted + len(batch)


def make_user():
    """A person in the ``viewer`` group (the role that reads every page)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(USERNAME, password=PASSWORD)
    user.groups.add(Group.objects.get(name="viewer"))
    return user


def describe(dataset: Dataset) -> dict:
    return {
        **asdict(dataset.shape),
        **dataset.counts,
        "teams": dataset.teams,
        "hub": dataset.hub,
        "hub_dependents": sum(1 for _, d, _ in dataset.edges if dataset.names[d] == dataset.hub),
        "most_hard": dataset.most_hard,
        "most_hard_dependencies": sum(
            1 for s, _, k in dataset.edges if dataset.names[s] == dataset.most_hard and k == "hard"
        ),
        "leaf": dataset.leaf,
        "map_team": dataset.map_team,
        "map_team_shown": dataset.map_team_shown,
        "service_sample": dataset.service_sample,
        "seed_s": round(dataset.seconds, 1),
    }


# --- Query counts (in-process) ----------------------------------------------------------------


def logged_in_client(user):
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return client


def links_of(dataset: Dataset) -> dict[str, str]:
    """Service name -> "N hard + M soft dependencies, K dependents"."""
    hard, soft, dependents = Counter(), Counter(), Counter()
    for s, d, kind in dataset.edges:
        (hard if kind == "hard" else soft)[s] += 1
        dependents[d] += 1
    return {
        name: f"{hard[i]} hard + {soft[i]} soft dependencies, {dependents[i]} dependents"
        for i, name in enumerate(dataset.names)
    }


def count_queries(dataset: Dataset, user) -> dict:
    """Queries per page, through the whole Django stack (session, middleware, view,
    template), counted with CaptureQueriesContext; each page is requested once before it is
    counted. The overview is counted with 100 and with every service shown (its page size
    patched: by default it shows the first views.PAGE_SIZE)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pages import views

    client = logged_in_client(user)

    def count(path: str, headers: dict | None = None, label: str = "") -> dict:
        client.get(path, headers=headers)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.content[:300]!r}")
        return {
            "page": label or path,
            "path": path,
            "htmx": bool(headers),
            "queries": len(captured.captured_queries),
            "rows": response.content.count(ROW_MARK),
            "bytes": len(response.content),
            "ms_in_process": round(seconds * 1000, 1),
        }

    total = dataset.shape.services
    page_size = getattr(views, "PAGE_SIZE", None)
    overview = [count("/", label=f"overview, first {page_size} shown (as served)")]
    overview.append(count("/", HX, label=f"fragment, first {page_size} shown (as served)"))
    constant, shown_rows = None, []
    if page_size is not None:
        for shown in sorted({100, total}):
            with mock.patch.object(views, "PAGE_SIZE", shown):
                full = count("/", label=f"overview, {shown} shown")
                fragment = count("/", HX, label=f"fragment, {shown} shown")
            for row in (full, fragment):
                if row["rows"] != min(shown, total):
                    raise RuntimeError(f"{row['page']}: {row['rows']} rows shown")
            shown_rows += [full, fragment]
        overview += shown_rows
        by_kind = defaultdict(set)
        for row in shown_rows:
            by_kind[row["htmx"]].add(row["queries"])
        constant = all(len(counts) == 1 for counts in by_kind.values())
    team = dataset.teams[1]
    overview.append(count(f"/?team={team}", label=f"overview, team {team}"))
    service = f"/services/{quote(dataset.hub)}/"
    links = links_of(dataset)
    others = [
        count(f"/services/{quote(dataset.leaf)}/",
              label=f"service {dataset.leaf} ({links[dataset.leaf]})"),
        count(f"/services/{quote(dataset.most_hard)}/",
              label=f"service {dataset.most_hard} ({links[dataset.most_hard]})"),
        count(service, label=f"service {dataset.hub} ({links[dataset.hub]})"),
        count(f"{service}?range=90d", label=f"service {dataset.hub}, range 90d"),
        count("/map/", label="map"),
        count(f"/map/?team={dataset.map_team}", label=f"map, team {dataset.map_team}"),
        count("/map/?group=team", label="map by team"),
        count("/wall/", label="wall"),
        count("/maintenance/", label="maintenance"),
    ]  # fmt: skip
    return {
        "page_size": page_size,
        "overview": overview,
        "shown": shown_rows,
        "overview_constant": constant,
        "other": others,
    }


# --- Where the time goes (in-process) ---------------------------------------------------------


def time_parts(dataset: Dataset, user, settle: Settle) -> dict:
    """Each page in-process (test Client, whole stack) and the reads it is made of, timed
    ``repeats`` times each after one warm-up. A part the code no longer has is skipped."""
    from django.template.loader import render_to_string
    from django.test import RequestFactory
    from django.utils import timezone

    from healthchecks.reads import availability, history
    from healthchecks.reads import reports as health_reports
    from pages import dependency_map, service_rows, views
    from services.graph import DependencyGraph
    from services.models import Service

    client = logged_in_client(user)
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1")
    request.user = user
    hub = Service.objects.get(name=dataset.hub)
    try:
        context = views._overview_context(request)
    except (AttributeError, TypeError) as exc:  # the render parts are then skipped
        context = {"missing": str(exc)}
    # The overview's first page: its services in its order (worst first), as it reads them.
    first_page = service_rows.ordered(Service.objects.all(), "worst")[: views.PAGE_SIZE]
    ids = list(first_page.values_list("id", flat=True))
    now = timezone.now()
    span = {"from": (now - timedelta(hours=24)).isoformat(), "to": now.isoformat()}
    repeats = dataset.shape.repeats
    parts = {
        "overview": {
            "whole request (test Client)": lambda: client.get("/"),
            "fragment request (test Client)": lambda: client.get("/", headers=HX),
            "context (views._overview_context)": lambda: views._overview_context(request),
            "render pages/overview.html (context built)": lambda: render_to_string(
                "pages/overview.html", context, request=request
            ),
            "render its #service-table (context built)": lambda: render_to_string(
                "pages/overview.html#service-table", context, request=request
            ),
            f"service_rows.rows ({len(ids)} services: reads and row HTML)": lambda: (
                service_rows.rows(first_page, timezone.now())
            ),
            f"status_strips ({len(ids)} services)": lambda: availability.status_strips(ids),
            f"services_uptime 24h ({len(ids)} services)": lambda: history.services_uptime(
                "24h", service_ids=ids
            ),
            f"services_uptime 30d ({len(ids)} services)": lambda: history.services_uptime(
                "30d", service_ids=ids
            ),
            f"services_latency_p95 ({len(ids)} services)": lambda: history.services_latency_p95(
                service_ids=ids
            ),
            "services_uptime 30d (every service; not read by the page)": lambda: (
                history.services_uptime("30d")
            ),
            "overall": health_reports.overall,
        },
        "service": {
            f"whole request {dataset.hub} (test Client)": lambda: client.get(
                f"/services/{dataset.hub}/"
            ),
            "service_detail": lambda: health_reports.service_detail(dataset.hub),
            "DependencyGraph.load (whole graph)": DependencyGraph.load,
            "impact (graph loaded)": functools.partial(DependencyGraph.load().impact, dataset.hub),
            "service_availability (4 windows)": lambda: availability.service_availability(
                hub, set()
            ),
            "status_timeline 24h": lambda: availability.status_timeline(
                hub, now - timedelta(hours=24)
            ),
            "service_history 24h": lambda: history.service_history(dataset.hub, span),
            "daily_uptime 90 days": lambda: history.daily_uptime(
                list(hub.checks.values_list("id", flat=True)), 90
            ),
        },
        "map": {
            "whole request /map/ (test Client)": lambda: client.get("/map/"),
            f"whole request /map/?team={dataset.map_team} (test Client)": lambda: client.get(
                f"/map/?team={dataset.map_team}"
            ),
            "_team_map": lambda: dependency_map._team_map(),
            f"_service_map({dataset.map_team!r})": lambda: dependency_map._service_map(
                dataset.map_team
            ),
        },
    }
    if "missing" in context:  # no context to render
        parts["overview"] = {k: v for k, v in parts["overview"].items() if "render" not in k}
    found: dict[str, dict] = {}
    for page, named in parts.items():
        settle()
        with support.cpu_usage() as cpu:
            rows = {}
            for label, function in named.items():
                try:
                    function()  # warm-up
                except (AttributeError, TypeError, NameError) as exc:
                    rows[label] = {"skipped": f"{type(exc).__name__}: {exc}"}
                    continue
                samples = [support.timed(function)[0] for _ in range(repeats)]
                rows[label] = support.summarise_ms(samples)
        found[page] = {"parts": rows, **cpu}
    # What the map would cost if it drew every service (it draws teams beyond MAP_LIMIT).
    limit = getattr(dependency_map, "MAP_LIMIT", None)
    if limit is not None and dataset.shape.services > limit:
        try:
            samples = [support.timed(dependency_map._service_map, "")[0] for _ in range(2)]
            found["map"]["parts"]["_service_map('') (every service; not served)"] = (
                support.summarise_ms(samples)
            )
        except (AttributeError, TypeError) as exc:
            found["map"]["parts"]["_service_map('')"] = {"skipped": str(exc)}
    return found


# --- Through gunicorn -------------------------------------------------------------------------


@dataclass
class PageResponse:
    status: int
    body: bytes
    seconds: float
    headers: dict[str, str]


class PageClient:
    """One HTTP/1.1 client on one connection (see support.Client), with the cookies the
    server sets (the session, CSRF) and headers per request."""

    def __init__(self, port: int):
        self.conn = HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict | None = None,
        body: bytes | None = None,
        expect: int = 200,
    ) -> PageResponse:
        sent = {"Connection": "keep-alive", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        seconds = time.perf_counter() - started
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:500]!r}")
        for header in response.msg.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return PageResponse(response.status, data, seconds, dict(response.getheaders()))

    def close(self) -> None:
        self.conn.close()


def login(client: PageClient) -> None:
    """Log in through the login form, as a browser does: its CSRF token and cookie, then
    the session cookie."""
    from django.conf import settings

    form = client.request("GET", "/accounts/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
    if token is None:
        raise RuntimeError("no CSRF token in the login form")
    body = urlencode(
        {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token[1].decode()}
    )
    client.request(
        "POST",
        "/accounts/login/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body.encode(),
        expect=302,
    )
    if settings.SESSION_COOKIE_NAME not in client.cookies:
        raise RuntimeError("logging in set no session cookie")
    client.request("GET", "/")  # 200: logged in (a 302 to the login would raise)


def time_requests(
    client: PageClient,
    kind: str,
    paths: list[str],
    warmup: int,
    settle: Settle,
    headers: dict | None = None,
    check: Callable[[PageResponse], None] | None = None,
) -> dict:
    """Send ``paths`` one after the other in blocks of CHUNK (with --wait-idle each block
    waits for an idle machine first). Each request carries an X-Request-ID, so that the
    time Django itself took can be read from the access log afterwards."""
    for path in paths[:warmup]:
        response = client.request("GET", path, headers=headers)
        if check is not None:
            check(response)
    samples, sizes, busy, ids, elapsed = [], [], [], [], 0.0
    for start in range(0, len(paths), CHUNK):
        settle()
        with support.cpu_usage() as cpu:
            started = time.perf_counter()
            for n, path in enumerate(paths[start : start + CHUNK], start):
                request_id = f"bench-{kind}-{n:06d}"
                response = client.request(
                    "GET", path, headers={**(headers or {}), "X-Request-ID": request_id}
                )
                samples.append(response.seconds)
                sizes.append(len(response.body))
                ids.append(request_id)
            elapsed += time.perf_counter() - started
        busy.append(cpu["machine_busy_pct"])
    return {
        **support.summarise_ms(samples),
        "machine_busy_pct": round(sum(busy) / len(busy), 1),
        "machine_busy_pct_max": max(busy),
        "requests_per_s": round(len(paths) / elapsed, 1),
        "mean_response_bytes": round(sum(sizes) / len(sizes)),
        "server_connection_header": response.headers.get("Connection", ""),
        "example": paths[0],
        "htmx": bool(headers),
        "request_ids": ids,
    }


def expect_rows(count: int, fragment: bool) -> Callable[[PageResponse], None]:
    def check(response: PageResponse) -> None:
        rows = response.body.count(ROW_MARK)
        whole = b"<html" in response.body
        if rows != count or whole == fragment:
            raise RuntimeError(f"expected {count} rows, fragment={fragment}; got {rows}, {whole}")

    return check


def time_http(client: PageClient, dataset: Dataset, settle: Settle) -> dict:
    from pages import views

    shape = dataset.shape
    shown = min(getattr(views, "PAGE_SIZE", shape.services), shape.services)
    sample = [f"/services/{quote(name)}/" for name in dataset.service_sample]
    services = [sample[n % len(sample)] for n in range(shape.requests)]
    team_map = f"/map/?team={dataset.map_team}"
    return {
        "overview": time_requests(client, "overview", ["/"] * shape.requests, shape.warmup,
                                  settle, check=expect_rows(shown, fragment=False)),
        "fragment": time_requests(client, "fragment", ["/"] * shape.requests, shape.warmup,
                                  settle, HX, check=expect_rows(shown, fragment=True)),
        "service": time_requests(client, "service", services, shape.warmup, settle),
        "service_90d": time_requests(client, "service90d", [f"{p}?range=90d" for p in services],
                                     shape.warmup, settle),
        "map": time_requests(client, "map", ["/map/"] * shape.map_requests, shape.warmup,
                             settle),
        "map_team": time_requests(client, "mapteam", [team_map] * shape.map_requests,
                                  shape.warmup, settle),
        "wall": time_requests(client, "wall", ["/wall/"] * shape.other_requests, shape.warmup,
                              settle),
        "maintenance": time_requests(client, "maintenance",
                                     ["/maintenance/"] * shape.other_requests, shape.warmup,
                                     settle),
    }  # fmt: skip


def add_app_times(http: dict, log: str) -> None:
    """Add each page's time inside Django (the access log's duration_ms: from the first
    middleware in to the response out; without gunicorn, the WSGI layer and the socket)."""
    durations = {}
    for line in log.splitlines():
        if '"duration_ms"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "request_id" in entry and "duration_ms" in entry:
            durations[entry["request_id"]] = entry["duration_ms"]
    for row in http.values():
        found = [durations[i] / 1000 for i in row.pop("request_ids") if i in durations]
        row["in_django"] = support.summarise_ms(found) if found else None


# --- Report -----------------------------------------------------------------------------------


def verdicts(results: dict) -> dict:
    http = results["http"]

    def check(key: str, target: str) -> dict:
        value = http[key]["p99_ms"]
        return {"value": value, "target": TARGETS[target], "met": value < TARGETS[target]}

    return {
        "overview_p99_ms": check("overview", "overview_p99_ms"),
        "fragment_p99_ms": check("fragment", "fragment_p99_ms"),
        "service_p99_ms": check("service", "service_p99_ms"),
        "service_90d_p99_ms": check("service_90d", "service_p99_ms"),
        "map_p99_ms": check("map", "map_p99_ms"),
        "map_team_p99_ms": check("map_team", "map_p99_ms"),
        "overview_queries_constant": {
            "value": [
                (row["rows"], row["htmx"], row["queries"]) for row in results["queries"]["shown"]
            ],
            "met": bool(results["queries"]["overview_constant"]),
        },
    }


def _mark(verdict: dict) -> str:
    return "met" if verdict["met"] else "MISSED"


def report(results: dict) -> None:
    machine, http, v = results["machine"], results["http"], results["verdicts"]
    data, queries = results["dataset"], results["queries"]
    print(
        f"\n{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, Django {machine['django']}, "
        f"gunicorn {machine['gunicorn']} (2 sync workers, 1 client on 127.0.0.1)\n"
        f"{data['services']:,} services in {len(data['teams'])} teams, "
        f"{data['dependencies']:,} dependencies, {data['checks']:,} checks, "
        f"{data['rollups']:,} rollups, {data['status_changes']:,} status changes "
        f"({data['status_changes_last_24h']:,} in the last 24 h), "
        f"{data['incidents']:,} incidents\n"
        "ms = end to end in the client (request sent to body read, loopback, a new TCP "
        "connection each: the sync workers close it); django = the access log's duration_ms; "
        "busy% = share of the whole machine's CPU in use during the measurement"
    )
    rows = []
    labels = {
        "overview": ("GET / (overview)", v["overview_p99_ms"]),
        "fragment": ("GET / HX-Request (fragment)", v["fragment_p99_ms"]),
        "service": (f"GET /services/<{len(data['service_sample'])}>/", v["service_p99_ms"]),
        "service_90d": ("GET /services/<...>/?range=90d", v["service_90d_p99_ms"]),
        "map": ("GET /map/", v["map_p99_ms"]),
        "map_team": (f"GET /map/?team={data['map_team']} ({data['map_team_shown']} shown)",
                     v["map_team_p99_ms"]),
        "wall": ("GET /wall/", None),
        "maintenance": ("GET /maintenance/", None),
    }  # fmt: skip
    for key, (label, verdict) in labels.items():
        row = http[key]
        django = row["in_django"] or {}
        rows.append(
            [label, row["n"], row["min_ms"], row["p50_ms"], row["p95_ms"], row["p99_ms"],
             row["max_ms"], django.get("p50_ms", ""), django.get("p99_ms", ""),
             round(row["mean_response_bytes"] / 1024, 1), row["machine_busy_pct"],
             f"p99 < {verdict['target']:.0f}" if verdict else "",
             _mark(verdict) if verdict else ""]
        )  # fmt: skip
    support.print_table(
        "HTTP (ms per request)",
        ["page", "n", "min", "p50", "p95", "p99", "max", "django p50", "django p99", "kB",
         "busy%", "target", "verdict"],
        rows,
    )  # fmt: skip
    support.print_table(
        "Queries per page (in-process, CaptureQueriesContext, whole stack with the session)",
        ["page", "rows", "queries", "kB", "ms in-process"],
        [
            [
                r["page"],
                r["rows"] or "",
                r["queries"],
                round(r["bytes"] / 1024, 1),
                r["ms_in_process"],
            ]
            for r in queries["overview"] + queries["other"]
        ],
    )
    constant = v["overview_queries_constant"]
    print(
        "overview query count the same with 100 and every service shown: "
        f"{'yes' if constant['met'] else 'NO'} {constant['value']} (rows, htmx, queries)"
    )
    for page, found in results["parts_in_process"].items():
        support.print_table(
            f"Where the time goes: {page} (in-process, ms; machine {found['machine_busy_pct']}% "
            "busy)",
            ["part", "n", "min", "p50", "max"],
            [
                [label, row.get("n", ""), row.get("min_ms", ""), row.get("p50_ms", ""),
                 row.get("max_ms", row.get("skipped", ""))]
                for label, row in found["parts"].items()
            ],
        )  # fmt: skip

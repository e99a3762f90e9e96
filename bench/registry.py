"""Registry benchmark: listing, start order, impact and manifests on a 10,000-service registry.

Targets (from the issue), on this machine, with 10,000 services and 30,000 dependencies:
a page of 100 from GET /api/services has p99 under 30 ms through a real HTTP server; start
order and impact of the whole graph each take under 200 ms; a 1,000-service manifest applies
in under 10 s; and a listing's query count does not grow with the page size.

Works on its own database (``portal_bench``, recreated each run on DATABASE_URL's server).
Application modules are imported inside functions: they may only be imported once
``support.setup_django`` has pointed Django at that database.
"""

import copy
import functools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench import support

NAME = "registry"
DESCRIPTION = "listing, start order, impact and manifests on 10,000 services"
DATABASE = "portal_bench"
SEED = 20240601
HARD_SHARE = 0.7  # the rest of the dependencies are soft

CHUNK = 250  # requests measured between two waits for an idle machine (--wait-idle)
Settle = Callable[[], None]  # waits for an idle machine before a measurement (--wait-idle)

TARGETS = {
    "list_p99_ms": 30.0,
    "start_order_ms": 200.0,
    "impact_ms": 200.0,
    "apply_1000_s": 10.0,
}


@dataclass(frozen=True)
class Shape:
    services: int
    dependencies: int
    teams: int
    tags: int
    manifest: int  # services in the applied manifest
    requests: int  # measured listing requests per listing kind
    warmup: int
    repeats: int  # runs of each graph computation


FULL = Shape(10_000, 30_000, 50, 40, 1_000, 2_000, 200, 20)
QUICK = Shape(1_000, 3_000, 10, 10, 100, 200, 20, 5)


@dataclass
class Dataset:
    shape: Shape
    names: list[str]
    teams: list[str]
    tags: list[str]
    hub: str  # the service with the most direct dependents: the impact subject
    hub_dependents: int
    seconds: float


def run(options) -> None:
    shape = QUICK if options.quick else FULL
    rng = random.Random(SEED)
    print(f"registry benchmark: {shape.services:,} services, {shape.dependencies:,} dependencies")
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.setup_django(url)

    from portal import tokens
    from portal.auth import system_actor

    dataset = seed(shape, rng)
    print(f"seeded in {dataset.seconds:.1f} s", flush=True)
    token = tokens.issue_token(
        "bench", ["registry:read", "registry:write"], issuer=system_actor("bench")
    ).secret
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "dataset": describe(dataset),
        "targets": TARGETS,
        "wait_idle_s": options.wait_idle,
    }
    print("counting queries ...", flush=True)
    results["queries"] = count_queries(token, dataset, rng)
    settle = functools.partial(support.settle, options.wait_idle)
    print("timing the graph in-process ...", flush=True)
    results["graph_in_process"] = time_graph(dataset, settle)
    close_django_connections()

    print("starting gunicorn ...", flush=True)
    with support.gunicorn(url, workers=2) as server:
        client = support.Client(server.port, token)
        results["server"] = {"workers": 2, "worker_class": "sync", "clients": 1}
        print(f"listing through http://127.0.0.1:{server.port} ...", flush=True)
        results["http"] = time_http_reads(client, dataset, rng, settle)
        print("applying manifests ...", flush=True)
        results["apply"] = time_apply(client, dataset, rng, settle)
        client.close()

    results["verdicts"] = verdicts(results)
    support.finish(NAME, results, report, quick=options.quick, smoke="on a small dataset")


# --- Dataset ----------------------------------------------------------------------------------


def service_name(index: int) -> str:
    return f"svc-{index:05d}"


def random_edges(shape: Shape, rng: random.Random) -> list[tuple[int, int, str]]:
    """``shape.dependencies`` distinct edges, each from a higher index to a lower one (so
    the graph is acyclic), HARD_SHARE of them hard. Low indexes gather many dependents."""
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < shape.dependencies:
        service = rng.randrange(1, shape.services)
        pairs.add((service, rng.randrange(service)))
    return [(s, d, "hard" if rng.random() < HARD_SHARE else "soft") for s, d in sorted(pairs)]


def seed(shape: Shape, rng: random.Random) -> Dataset:
    """Bulk-insert teams, tags, services, their tags and dependencies, then ANALYZE."""
    from django.db import connection, transaction
    from django.utils import timezone

    from services.models import Dependency, LifecycleStatus, Service, Tag, Team

    started = time.perf_counter()
    now = timezone.now()
    statuses = [LifecycleStatus.RUNNING] * 8 + [LifecycleStatus.DEGRADED, LifecycleStatus.STOPPED]
    with transaction.atomic():
        teams = Team.objects.bulk_create(
            Team(name=f"team-{t:02d}", display_name=f"Team {t}", contact=f"#team-{t:02d}")
            for t in range(shape.teams)
        )
        tags = Tag.objects.bulk_create(Tag(name=f"tag-{t:02d}") for t in range(shape.tags))
        services = []
        for i in range(shape.services):
            team = rng.choice(teams)
            name = service_name(i)
            services.append(
                Service(
                    name=name,
                    display_name=f"Service {i}",
                    description=f"Benchmark service {i} of {team.name}; seeded, not real.",
                    team=team,
                    is_critical=rng.random() < 0.05,
                    repository_url=f"https://git.example.internal/{team.name}/{name}",
                    runbook_url=f"https://docs.example.internal/runbooks/{name}",
                    deployed_version=f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.0",
                    lifecycle_status=rng.choice(statuses),
                    lifecycle_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        Service.objects.bulk_create(services, batch_size=2000)
        through = Service.tags.through
        through.objects.bulk_create(
            (
                through(service_id=service.id, tag_id=tag.id)
                for service in services
                for tag in rng.sample(tags, rng.randint(0, 3))
            ),
            batch_size=5000,
        )
        edges = random_edges(shape, rng)
        Dependency.objects.bulk_create(
            (
                Dependency(
                    service_id=services[s].id,
                    depends_on_id=services[d].id,
                    kind=kind,
                    created_at=now,
                )
                for s, d, kind in edges
            ),
            batch_size=5000,
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # fresh statistics, as a live database would have
    hub, hub_dependents = Counter(d for _, d, _ in edges).most_common(1)[0]
    return Dataset(
        shape=shape,
        names=[s.name for s in services],
        teams=[t.name for t in teams],
        tags=[t.name for t in tags],
        hub=service_name(hub),
        hub_dependents=hub_dependents,
        seconds=time.perf_counter() - started,
    )


def describe(dataset: Dataset) -> dict:
    return {
        **asdict(dataset.shape),
        "hard_share": HARD_SHARE,
        "edges": "random, each from a higher index to a lower one (acyclic)",
        "impact_subject": dataset.hub,
        "impact_subject_direct_dependents": dataset.hub_dependents,
        "seed_seconds": round(dataset.seconds, 2),
        "rng_seed": SEED,
    }


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


# --- Query counts (in-process) ----------------------------------------------------------------


def count_queries(token: str, dataset: Dataset, rng: random.Random) -> dict:
    """Queries per request, through the whole Django stack (middleware, auth, view), counted
    with CaptureQueriesContext. Each path is requested once before it is counted, so that the
    token's once-a-minute last_used_at write is not counted."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")

    def count(path: str) -> dict:
        client.get(path)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.content[:300]!r}")
        body = response.json()
        items = len(body["items"]) if isinstance(body, dict) and "items" in body else None
        return {"path": path, "queries": len(captured.captured_queries), "items": items}

    middle = dataset.shape.services // 2
    team = dataset.teams[0]
    listing = [count(f"/api/services?limit={n}&offset={middle}") for n in (1, 10, 100, 500)]
    filtered = [count(f"/api/services?team={team}&limit={n}") for n in (1, 10, 100)]
    others = [
        count("/api/registry/startup-order"),
        count(f"/api/services/{dataset.hub}/impact"),
    ]
    return {
        "listing": listing,
        "listing_constant": len({row["queries"] for row in listing}) == 1,
        "filtered_listing": filtered,
        "filtered_listing_constant": len({row["queries"] for row in filtered}) == 1,
        "other": others,
        "apply": count_apply_queries(dataset, rng),
    }


class _RollBack(Exception):
    """Raised to undo a measured apply."""


def count_apply_queries(dataset: Dataset, rng: random.Random) -> list[dict]:
    """Queries and time of applying manifests of growing size in-process, each rolled back:
    a constant count means no per-service queries."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from portal.auth import system_actor
    from services import registry
    from services.schemas import ManifestIn

    rows = []
    for size in sorted({10, 100, dataset.shape.manifest}):
        manifest = ManifestIn.model_validate(build_manifest(dataset, random.Random(size), size))
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            try:
                with transaction.atomic():
                    registry.apply_manifest(manifest, system_actor("bench"))
                    seconds = time.perf_counter() - started
                    raise _RollBack
            except _RollBack:
                pass
        rows.append(
            {
                "services": size,
                "queries": len(captured.captured_queries),
                "seconds": round(seconds, 3),
            }
        )
    return rows


# --- Graph (in-process) -----------------------------------------------------------------------


def time_graph(dataset: Dataset, settle: Settle) -> dict:
    """Start order and impact of the whole graph, each timed with and without its load."""
    from services.graph import DependencyGraph

    DependencyGraph.load().start_order()  # warm-up
    settle()
    parts: dict[str, list[float]] = {
        "load": [],
        "start_order": [],
        "impact": [],
        "start_order_with_load": [],
        "impact_with_load": [],
    }
    with support.cpu_usage() as cpu:
        for _ in range(dataset.shape.repeats):
            load, graph = support.timed(DependencyGraph.load)
            order_seconds, order = support.timed(graph.start_order)
            parts["load"].append(load)
            parts["start_order"].append(order_seconds)
            parts["start_order_with_load"].append(load + order_seconds)
            load, graph = support.timed(DependencyGraph.load)
            impact_seconds, impact = support.timed(graph.impact, dataset.hub)
            parts["impact"].append(impact_seconds)
            parts["impact_with_load"].append(load + impact_seconds)
    if len(order) != dataset.shape.services:
        raise RuntimeError(f"start order has {len(order)} services")
    return {
        **{name: support.summarise_ms(samples) for name, samples in parts.items()},
        "impact_size": len(impact),
        "impact_down": sum(1 for row in impact if row["effect"] == "down"),
        "impact_max_depth": max(row["depth"] for row in impact),
        **cpu,
    }


# --- Through gunicorn -------------------------------------------------------------------------


def time_requests(client: support.Client, paths: list[str], warmup: int, settle: Settle) -> dict:
    """Send ``paths`` one after the other, in blocks of CHUNK; with --wait-idle each block
    waits for an idle machine first, so that a shared machine's other work stays out."""
    for path in paths[:warmup]:
        client.get(path)
    samples, sizes, busy, elapsed = [], [], [], 0.0
    for start in range(0, len(paths), CHUNK):
        settle()
        with support.cpu_usage() as cpu:
            started = time.perf_counter()
            for path in paths[start : start + CHUNK]:
                response = client.get(path)
                samples.append(response.seconds)
                sizes.append(len(response.body))
            elapsed += time.perf_counter() - started
        busy.append(cpu["machine_busy_pct"])
    return {
        **support.summarise_ms(samples),
        "machine_busy_pct": round(sum(busy) / len(busy), 1),
        "machine_busy_pct_max": max(busy),
        "requests_per_s": round(len(paths) / elapsed, 1),
        "mean_response_bytes": round(sum(sizes) / len(sizes)),
        "server_connection_header": response.connection,
        "example": paths[0],
    }


def second_page_or_first(rng: random.Random, page: int) -> str:
    return f"limit={page}&offset={rng.choice([0, page])}"


def time_http_reads(
    client: support.Client, dataset: Dataset, rng: random.Random, settle: Settle
) -> dict:
    shape = dataset.shape
    page = 100
    listing = [
        f"/api/services?limit={page}&offset={rng.randrange(shape.services - page + 1)}"
        for _ in range(shape.requests)
    ]
    first = client.get(listing[0]).json()
    if len(first["items"]) != page or first["count"] != shape.services:
        raise RuntimeError(f"unexpected listing: {len(first['items'])} of {first['count']}")
    by_team = [
        f"/api/services?team={rng.choice(dataset.teams)}&{second_page_or_first(rng, page)}"
        for _ in range(shape.requests)
    ]
    by_tag = [
        f"/api/services?tag={rng.choice(dataset.tags)}&{second_page_or_first(rng, page)}"
        for _ in range(shape.requests)
    ]
    warmup = shape.warmup
    graph_warmup = 2
    order = client.get("/api/registry/startup-order").json()["order"]
    if len(order) != shape.services:
        raise RuntimeError(f"startup-order lists {len(order)} services")
    return {
        "list_page_100": time_requests(client, listing, warmup, settle),
        "list_by_team_100": time_requests(client, by_team, warmup, settle),
        "list_by_tag_100": time_requests(client, by_tag, warmup, settle),
        "startup_order_api": time_requests(
            client, ["/api/registry/startup-order"] * shape.repeats, graph_warmup, settle
        ),
        "impact_api": time_requests(
            client, [f"/api/services/{dataset.hub}/impact"] * shape.repeats, graph_warmup, settle
        ),
    }


def build_manifest(dataset: Dataset, rng: random.Random, size: int, prefix: str = "new") -> dict:
    """``size`` new services in two new teams and the existing ones. Each depends on one to
    three existing services and, half of them, on a new service listed later in the manifest
    (a forward reference); new-i -> new-j only for j > i keeps the graph acyclic."""
    names = [f"{prefix}-{i:04d}" for i in range(size)]
    new_teams = [f"{prefix}-team-a", f"{prefix}-team-b"]
    services = []
    for i, name in enumerate(names):
        dependencies: list = [
            {"service": target, "kind": "hard" if rng.random() < HARD_SHARE else "soft"}
            for target in rng.sample(dataset.names, rng.randint(1, 3))
        ]
        if i + 1 < size and rng.random() < 0.5:
            dependencies.append(names[rng.randrange(i + 1, size)])  # plain name: hard
        team = rng.choice(new_teams) if i % 10 == 0 else rng.choice(dataset.teams)
        services.append(
            {
                "name": name,
                "team": team,
                "display_name": f"New service {i}",
                "description": f"Applied by the registry benchmark ({prefix} {i}).",
                "tags": rng.sample(dataset.tags, rng.randint(0, 3)),
                "repository_url": f"https://git.example.internal/{team}/{name}",
                "deployed_version": f"1.{i % 7}.0",
                "dependencies": dependencies,
            }
        )
    return {
        "teams": [{"name": t, "display_name": t.replace("-", " ").title()} for t in new_teams],
        "services": services,
    }


def changed_manifest(manifest: dict, rng: random.Random, dataset: Dataset, share: float):
    """A copy with ``share`` of the services changed: half a scalar field, half their
    dependencies (one more on an existing service). Returns the copy and the changed names."""
    changed = copy.deepcopy(manifest)
    chosen = rng.sample(changed["services"], round(len(changed["services"]) * share))
    for n, spec in enumerate(chosen):
        if n % 2:
            spec["deployed_version"] += "-patched"
        else:
            existing = {d["service"] if isinstance(d, dict) else d for d in spec["dependencies"]}
            extra = rng.choice([s for s in dataset.names[:100] if s not in existing])
            spec["dependencies"].append({"service": extra, "kind": "soft"})
    return changed, sorted(spec["name"] for spec in chosen)


def time_apply(
    client: support.Client, dataset: Dataset, rng: random.Random, settle: Settle
) -> dict:
    size = dataset.shape.manifest
    manifest = build_manifest(dataset, rng, size)
    variant, changed = changed_manifest(manifest, rng, dataset, share=0.1)
    body_bytes = len(json.dumps(manifest).encode())
    settle()

    def apply(document: dict, outcome: str, expected: list[str] | int) -> float:
        response = client.request("POST", "/api/registry/apply", document)
        result = response.json()
        got = result[outcome]
        if (len(got) if isinstance(expected, int) else sorted(got)) != expected:
            raise RuntimeError(f"apply: expected {expected} {outcome}, got {len(got)}")
        return response.seconds

    with support.cpu_usage() as cpu:
        create = apply(manifest, "created", size)
        unchanged = [apply(manifest, "unchanged", size) for _ in range(5)]
        # Alternate between the variant and the original: each apply changes the same 10%.
        updates = [apply(variant if n % 2 == 0 else manifest, "updated", changed) for n in range(4)]
    return {
        **cpu,
        "manifest_services": size,
        "manifest_bytes": body_bytes,
        "create_s": round(create, 3),
        "unchanged_s": support.summarise_ms(unchanged),
        "changed_10pct": {"services_changed": len(changed), **support.summarise_ms(updates)},
    }


# --- Report -----------------------------------------------------------------------------------


def verdicts(results: dict) -> dict:
    http, graph = results["http"], results["graph_in_process"]

    def check(value: float, target: float) -> dict:
        return {"value": value, "target": target, "met": value < target}

    return {
        "list_p99_ms": check(http["list_page_100"]["p99_ms"], TARGETS["list_p99_ms"]),
        "start_order_ms": check(
            graph["start_order_with_load"]["max_ms"], TARGETS["start_order_ms"]
        ),
        "impact_ms": check(graph["impact_with_load"]["max_ms"], TARGETS["impact_ms"]),
        "start_order_api_ms": check(http["startup_order_api"]["max_ms"], TARGETS["start_order_ms"]),
        "impact_api_ms": check(http["impact_api"]["max_ms"], TARGETS["impact_ms"]),
        "apply_1000_s": check(results["apply"]["create_s"], TARGETS["apply_1000_s"]),
        "listing_queries_constant": {
            "value": [row["queries"] for row in results["queries"]["listing"]],
            "met": results["queries"]["listing_constant"],
        },
    }


def _mark(verdict: dict) -> str:
    return "met" if verdict["met"] else "MISSED"


def report(results: dict) -> None:
    machine, http, graph = results["machine"], results["http"], results["graph_in_process"]
    apply, queries, v = results["apply"], results["queries"], results["verdicts"]
    print(
        f"\n{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, Django {machine['django']}, "
        f"gunicorn {machine['gunicorn']} (2 sync workers, 1 client)\n"
        "busy% = share of the whole machine's CPU time in use during the measurement (all "
        "processes); with one client and one server it should stay near 50%"
    )
    support.print_table(
        "HTTP (ms per request)",
        ["request", "n", "min", "p50", "p95", "p99", "max", "req/s", "busy%", "target", "verdict"],
        [
            ["GET /api/services 100, varied offset", *_http_row(http["list_page_100"]),
             "p99 < 30", _mark(v["list_p99_ms"])],
            ["GET /api/services?team= 100", *_http_row(http["list_by_team_100"]), "", ""],
            ["GET /api/services?tag= 100", *_http_row(http["list_by_tag_100"]), "", ""],
            ["GET /api/registry/startup-order", *_http_row(http["startup_order_api"]),
             "< 200", _mark(v["start_order_api_ms"])],
            [f"GET /api/services/{results['dataset']['impact_subject']}/impact",
             *_http_row(http["impact_api"]), "< 200", _mark(v["impact_api_ms"])],
        ],
    )  # fmt: skip
    support.print_table(
        f"Graph in-process, whole graph ({graph['impact_size']:,} services affected, "
        f"{graph['impact_down']:,} down, depth {graph['impact_max_depth']}; "
        f"machine {graph['machine_busy_pct']}% busy)",
        ["computation", "n", "min ms", "p50 ms", "max ms", "target", "verdict"],
        [
            ["start order incl. load", *_graph_row(graph["start_order_with_load"]),
             "< 200", _mark(v["start_order_ms"])],
            ["impact incl. load", *_graph_row(graph["impact_with_load"]),
             "< 200", _mark(v["impact_ms"])],
            ["  load alone", *_graph_row(graph["load"]), "", ""],
            ["  start order alone", *_graph_row(graph["start_order"]), "", ""],
            ["  impact alone", *_graph_row(graph["impact"]), "", ""],
        ],
    )  # fmt: skip
    support.print_table(
        f"POST /api/registry/apply, {apply['manifest_services']:,} services "
        f"({apply['manifest_bytes']:,} bytes; machine {apply['machine_busy_pct']}% busy)",
        ["apply", "n", "min s", "p50 s", "max s", "target", "verdict"],
        [
            ["create all", 1, *[apply["create_s"]] * 3, "< 10 s", _mark(v["apply_1000_s"])],
            ["again, all unchanged", *_seconds_row(apply["unchanged_s"]), "", ""],
            [f"{apply['changed_10pct']['services_changed']} changed",
             *_seconds_row(apply["changed_10pct"]), "", ""],
        ],
    )  # fmt: skip
    support.print_table(
        "Queries per request (in-process, CaptureQueriesContext)",
        ["request", "items", "queries"],
        [
            [row["path"], "" if row["items"] is None else row["items"], row["queries"]]
            for row in queries["listing"] + queries["filtered_listing"] + queries["other"]
        ]
        + [
            [f"apply {row['services']} new services (rolled back, {row['seconds']} s)", "",
             row["queries"]]
            for row in queries["apply"]
        ],
    )  # fmt: skip
    print(
        "listing query count constant over limit=1..500: "
        f"{'yes' if queries['listing_constant'] else 'NO'} {v['listing_queries_constant']['value']}"
    )


def _http_row(row: dict) -> list:
    return [row["n"], row["min_ms"], row["p50_ms"], row["p95_ms"], row["p99_ms"], row["max_ms"],
            row["requests_per_s"], row["machine_busy_pct"]]  # fmt: skip


def _seconds_row(row: dict) -> list:
    return [row["n"], *(row[key] / 1000 for key in ("min_ms", "p50_ms", "max_ms"))]


def _graph_row(row: dict) -> list:
    return [row["n"], row["min_ms"], row["p50_ms"], row["max_ms"]]

"""Automation benchmark: a shared dependency of 1,000 services goes down and comes back.

Targets (issue 10): 1,000 simultaneous status changes handled into alerts and deliveries in
under 2 s; predictions for 10,000 checks in under 30 s. Measured in-process on PostgreSQL:
the status changes are written by the health engine's own ``service_health.recompute`` (as a
recording flush would), then timed are ``alerts.process_status_changes`` (claim the outbox,
reconcile the alerts, fold the dependents, queue deliveries) and ``notify.send_due`` (one real
HTTP call through apprise's json:// plugin to a receiver on 127.0.0.1); then
``predict.refresh`` over 10,000 checks with an hour of results each. Works on its own
database (``portal_bench_automation``).
"""

import statistics
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import support

NAME = "automation"
DESCRIPTION = "1,000 services' shared dependency down and back: alerts and deliveries"
DATABASE = "portal_bench_automation"
TARGETS = {"changes_to_deliveries_s": 2.0, "predictions_10000_checks_s": 30.0}


class Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        Receiver.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def seed(dependents: int) -> dict:
    from django.db import transaction

    from healthchecks.models import CheckState, HealthCheck, ServiceHealth
    from healthchecks.status import Status
    from services.models import Dependency, DependencyKind, Service, Team

    with transaction.atomic():
        team = Team.objects.create(name="core")
        root = Service.objects.create(name="shared-db", team=team)
        services = Service.objects.bulk_create(
            [Service(name=f"svc-{i:04d}", team=team) for i in range(dependents)]
        )
        Dependency.objects.bulk_create(
            [Dependency(service=s, depends_on=root, kind=DependencyKind.HARD) for s in services]
        )
        everyone = [root, *services]
        checks = HealthCheck.objects.bulk_create(
            [
                HealthCheck(service=s, name="http", kind="http", target="http://127.0.0.1:9/")
                for s in everyone
            ]
        )
        CheckState.objects.bulk_create(
            [CheckState(health_check=c, status=Status.HEALTHY) for c in checks]
        )
        ServiceHealth.objects.bulk_create(
            [ServiceHealth(service=s, status=Status.HEALTHY) for s in everyone]
        )
    return {"root": root.id, "services": [s.id for s in services], "checks": len(checks)}


def move(service_ids: list[int], status: int) -> int:
    """Set these services' checks to ``status`` and let the engine's own recompute write
    the status changes (as a recording flush does). Returns the changes written."""
    from django.db import transaction

    from healthchecks.engine import service_health
    from healthchecks.models import CheckState

    with transaction.atomic():  # as a recording flush does
        CheckState.objects.filter(health_check__service_id__in=service_ids).update(status=status)
        return len(service_health.recompute(set(service_ids)))


def handle() -> dict:
    """Time the automation on what the engine wrote: alerts, then the one send."""
    from django.utils import timezone

    from automation import alerts, notify

    began = time.perf_counter()
    outcome = alerts.process_status_changes()
    processed = time.perf_counter()
    sent = notify.send_due(now=timezone.now() + timedelta(hours=1))
    done = time.perf_counter()
    return {
        "changes": outcome.changes,
        "alerts_opened": outcome.opened,
        "alerts_resolved": outcome.resolved,
        "deliveries_queued": outcome.notifications,
        "deliveries_handled": sent,
        "process_s": round(processed - began, 3),
        "send_s": round(done - processed, 3),
        "total_s": round(done - began, 3),
    }


def time_predictions(checks: int) -> dict:
    """``checks`` HTTP checks with a latency threshold and an hour of results (two a minute;
    a tenth of them rising towards the threshold), then ``predict.refresh`` timed."""
    import random

    from django.db import transaction
    from django.utils import timezone

    from healthchecks.models import CheckResult, CheckState, HealthCheck
    from healthchecks.reads import predict
    from healthchecks.status import Status
    from services.models import Service, Team

    rng = random.Random(10)
    team = Team.objects.get_or_create(name="predict")[0]
    with transaction.atomic():
        services = Service.objects.bulk_create(
            [Service(name=f"p-{i:05d}", team=team) for i in range(checks)]
        )
        made = HealthCheck.objects.bulk_create(
            [
                HealthCheck(
                    service=s,
                    name="http",
                    kind="http",
                    target="http://127.0.0.1:9/",
                    latency_threshold_ms=500,
                )
                for s in services
            ]
        )
        CheckState.objects.bulk_create([CheckState(health_check=c) for c in made])
    now = timezone.now()
    seeded = time.perf_counter()
    for start in range(0, len(made), 500):
        rows = []
        for index, check in enumerate(made[start : start + 500], start):
            rising = index % 10 == 0
            for half_minute in range(120):
                minutes_ago = 60 - half_minute / 2
                base = 300 - 3 * minutes_ago if rising else 120
                rows.append(
                    CheckResult(
                        health_check=check,
                        at=now - timedelta(minutes=minutes_ago),
                        response_us=int((base + rng.uniform(-15, 15)) * 1000),
                        status=Status.HEALTHY,
                    )
                )
        CheckResult.objects.bulk_create(rows, batch_size=5000)
    seeded = time.perf_counter() - seeded
    support.analyze()
    began = time.perf_counter()
    found = predict.refresh(now)
    took = time.perf_counter() - began
    return {
        "checks": checks,
        "results_seeded": checks * 120,
        "seed_s": round(seeded, 1),
        "rising_checks": len(made[::10]),
        "predictions": found,
        "refresh_s": round(took, 2),
    }


def run(options) -> None:
    dependents = 200 if options.quick else 1000
    rounds = 2 if options.quick else 5
    print(f"automation benchmark: 1 shared dependency, {dependents:,} hard dependents")
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.setup_django(url)

    from django.conf import settings

    from automation.channels import ChannelIn, put_channel
    from automation.models import Alert
    from healthchecks.status import Status
    from portal.auth import system_actor

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    actor = system_actor("bench")
    put_channel(
        "ops",
        ChannelIn(
            url=f"json://127.0.0.1:{server.server_port}/hook",
            teams=[],
            events=["down", "degraded", "recovered"],
        ),
        actor,
    )
    settings.AUTOMATION_GROUP_SECONDS = 1.0
    ids = seed(dependents)
    support.analyze()
    runs = []
    for n in range(rounds):
        Receiver.bodies.clear()
        row = {"round": n + 1}
        # The shared dependency fails: it goes down, its 1,000 dependents degraded.
        row["root_down_changes_written"] = move([ids["root"]], Status.UNHEALTHY)
        row["root_down"] = handle()
        row["folded"] = Alert.objects.filter(resolved_at=None, root__isnull=False).count()
        # The dependents' own checks fail too (their calls to it fail): 1,000 more changes.
        row["dependents_down_changes_written"] = move(ids["services"], Status.UNHEALTHY)
        row["dependents_down"] = handle()
        # Everything comes back.
        move(ids["services"], Status.HEALTHY)
        row["recovery_changes_written"] = move([ids["root"]], Status.HEALTHY)
        row["recovery"] = handle()
        row["notifications_received"] = len(Receiver.bodies)
        row["first_notification"] = Receiver.bodies[0].decode()[:400] if Receiver.bodies else ""
        runs.append(row)
        print(
            f"  round {n + 1}: root down {row['root_down']['total_s']} s "
            f"({row['root_down']['changes']} changes, {row['folded']} folded), dependents "
            f"down {row['dependents_down']['total_s']} s, recovery "
            f"{row['recovery']['total_s']} s, notifications {row['notifications_received']}",
            flush=True,
        )
    server.shutdown()
    prediction_checks = 1000 if options.quick else 10_000
    print(f"predictions for {prediction_checks:,} checks ...", flush=True)
    predictions = time_predictions(prediction_checks)
    print(f"  {predictions}", flush=True)
    worst = max(
        max(r["root_down"]["total_s"], r["dependents_down"]["total_s"], r["recovery"]["total_s"])
        for r in runs
    )
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "dependents": dependents,
        "targets": TARGETS,
        "runs": runs,
        "summary": {
            "root_down_median_s": statistics.median(r["root_down"]["total_s"] for r in runs),
            "dependents_down_median_s": statistics.median(
                r["dependents_down"]["total_s"] for r in runs
            ),
            "recovery_median_s": statistics.median(r["recovery"]["total_s"] for r in runs),
            "worst_s": worst,
            "notifications_per_round": sorted({r["notifications_received"] for r in runs}),
        },
        "predictions": predictions,
        "verdicts": {
            "changes_to_deliveries_s": {
                "value": worst,
                "target": TARGETS["changes_to_deliveries_s"],
                "met": worst < TARGETS["changes_to_deliveries_s"],
            },
            "predictions_10000_checks_s": {
                "value": predictions["refresh_s"],
                "target": TARGETS["predictions_10000_checks_s"],
                "met": predictions["checks"] >= 10_000
                and predictions["refresh_s"] < TARGETS["predictions_10000_checks_s"],
            },
        },
    }
    support.finish(NAME, results, report, quick=options.quick, smoke="(200 dependents, 2 rounds)")


def report(results: dict) -> None:
    summary = results["summary"]
    support.print_table(
        "automation: a shared dependency of "
        f"{results['dependents']:,} services down and back (seconds, process + send)",
        ["step", "median", "worst of all"],
        [
            [
                f"root down ({results['dependents'] + 1:,} changes)",
                summary["root_down_median_s"],
                summary["worst_s"],
            ],
            ["dependents' own checks fail", summary["dependents_down_median_s"], ""],
            ["recovery", summary["recovery_median_s"], ""],
        ],
    )
    print(f"notifications per round: {summary['notifications_per_round']} (down + recovered)")
    p = results["predictions"]
    print(
        f"predictions: {p['predictions']} found among {p['checks']:,} checks "
        f"({p['rising_checks']:,} rising) in {p['refresh_s']} s"
    )
    for name, verdict in results["verdicts"].items():
        print(
            f"  {name}: {verdict['value']} (target {verdict['target']}) "
            f"{'met' if verdict['met'] else 'MISSED'}"
        )

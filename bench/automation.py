"""Automation benchmark: a shared dependency of 1,000 services goes down and comes back.

Target (issue 10): 1,000 simultaneous status changes handled into alerts and deliveries in
under 2 s. Measured in-process on PostgreSQL: the status changes are written by the health
engine's own ``service_health.recompute`` (as a recording flush would), then timed are
``alerts.process_status_changes`` (claim the outbox, reconcile the alerts, fold the dependents,
queue deliveries) and ``notify.send_due`` (one real HTTP call through apprise's json:// plugin
to a receiver on 127.0.0.1). Works on its own database (``portal_bench_automation``).
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
TARGETS = {"changes_to_deliveries_s": 2.0}


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
    from healthchecks import service_health
    from healthchecks.models import CheckState

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
        "verdicts": {
            "changes_to_deliveries_s": {
                "value": worst,
                "target": TARGETS["changes_to_deliveries_s"],
                "met": worst < TARGETS["changes_to_deliveries_s"],
            }
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
            ["root down (1,001 changes)", summary["root_down_median_s"], summary["worst_s"]],
            ["dependents' own checks fail", summary["dependents_down_median_s"], ""],
            ["recovery", summary["recovery_median_s"], ""],
        ],
    )
    print(f"notifications per round: {summary['notifications_per_round']} (down + recovered)")

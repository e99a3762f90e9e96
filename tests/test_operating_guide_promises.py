"""docs/operating.md's figures and commands are the ones the shipped files run: the processes
table against docker-compose.yml and deploy/k8s (and the connections they may hold), beat's
housekeeping against its schedule, the "watch" column against deploy/prometheus/alerts.yml,
the storage table against bench/results/history-size.json, and the production defaults it
quotes against the settings a production process reads (no .env, no DEBUG). A change to
either side that the other does not follow fails here."""

import json
import math
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "operating.md").read_text()
K8S = ROOT / "deploy" / "k8s"


def guide_says(*fragments: str) -> None:
    for fragment in fragments:
        assert fragment in " ".join(GUIDE.split()), f"docs/operating.md no longer says {fragment!r}"


def k8s() -> dict[tuple[str, str], dict]:
    documents = [
        d
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for d in yaml.safe_load_all(path.read_text())
    ]
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def command_of(deployment: dict) -> list[str]:
    return deployment["spec"]["template"]["spec"]["containers"][0]["command"]


def flag(command: list[str], name: str) -> str:
    return next(part.split("=", 1)[1] for part in command if part.startswith(f"--{name}="))


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_processes_run_as_the_guide_says():
    documents, services = k8s(), compose()
    web = documents["Deployment", "portal-web"]
    guide_says(
        "| web | `gunicorn -c portal/gunicorn.conf.py`",
        "`WEB_CONCURRENCY`, 3",
        "(k8s: 3, a PodDisruptionBudget keeps 2)",
        "`celery -A portal worker --queues=probes,celery --concurrency=8`",
        "(k8s: 2-10, HPA on CPU)",
        "`celery -A portal worker --queues=dispatch --concurrency=1`",
        "`celery -A portal worker --queues=automation --concurrency=2`",
        "| beat | `celery -A portal beat` | 2, one active and one standing by (k8s: 2 on "
        "different nodes where it can, `RollingUpdate`, a PodDisruptionBudget keeps 1; compose: "
        "`deploy.replicas: 2`); more is safe |",
        "| migrate | `manage.py upgrade` (`migrate`, one process at a time; `register_self`; the "
        "first administrator) | once per release, before the rest (k8s: the web pods' init "
        "container, the other parts wait for the schema; compose: the one-shot `migrate`) |",
    )
    assert (
        command_of(web)
        == services["web"]["command"]
        == ["gunicorn", "-c", "portal/gunicorn.conf.py"]
    )
    gunicorn = (ROOT / "portal" / "gunicorn.conf.py").read_text()
    assert 'workers = int(os.environ.get("WEB_CONCURRENCY", "3"))' in gunicorn
    assert 'worker_class = "gthread"' in gunicorn and "threads = settings.DB_POOL_SIZE" in gunicorn
    assert web["spec"]["replicas"] == 3
    pdb = documents["PodDisruptionBudget", "portal-web"]
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    hpa = documents["HorizontalPodAutoscaler", "portal-probe-worker"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    for name, compose_name, queues, concurrency in [
        ("portal-probe-worker", "worker", "probes,celery", "8"),
        ("portal-dispatcher", "dispatcher", "dispatch", "1"),
        ("portal-automation", "automation", "automation", "2"),
    ]:
        for command in (
            command_of(documents["Deployment", name]),
            services[compose_name]["command"],
        ):
            assert command[:4] == ["celery", "-A", "portal", "worker"], name
            assert (flag(command, "queues"), flag(command, "concurrency")) == (queues, concurrency)
    beat = documents["Deployment", "portal-beat"]
    assert beat["spec"]["replicas"] == services["beat"]["deploy"]["replicas"] == 2
    assert beat["spec"]["strategy"]["type"] == "RollingUpdate"
    assert documents["PodDisruptionBudget", "portal-beat"]["spec"]["minAvailable"] == 1
    assert (
        command_of(beat)[:4]
        == services["beat"]["command"][:4]
        == ["celery", "-A", "portal", "beat"]
    )
    (upgrade,) = web["spec"]["template"]["spec"]["initContainers"]
    assert (
        upgrade["command"] == services["migrate"]["command"] == ["python", "manage.py", "upgrade"]
    )


def test_the_restore_commands_name_the_portals_services_and_queues():
    """Step 1 stops compose services by name and step 4 purges queues by name: each must be
    one the portal has, and together every queue it sends to."""
    from django.conf import settings

    from portal.celery import app

    guide = " ".join(GUIDE.split())
    stop = re.search(r"docker compose stop ([a-z ]+)`", guide).group(1).split()
    assert sorted(stop) == sorted(set(compose()) - {"db", "redis", "migrate"})
    purged = re.search(r"purge -f -Q ([a-z,]+)`", guide).group(1).split(",")
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert sorted(purged) == sorted(routed | {app.conf.task_default_queue})


def test_the_kubernetes_defaults_hold_at_most_436_connections():
    """max_connections must exceed DB_POOL_SIZE x every process at the HPA's maximum: the
    figure the guide gives is the one the manifests make."""
    documents = k8s()

    def celery_processes(name: str) -> int:  # the pool's processes and the main one
        return int(flag(command_of(documents["Deployment", name]), "concurrency")) + 1

    web = documents["Deployment", "portal-web"]["spec"]["replicas"] * 3  # WEB_CONCURRENCY
    probes = documents["HorizontalPodAutoscaler", "portal-probe-worker"]["spec"]["maxReplicas"]
    processes = (
        web
        + probes * celery_processes("portal-probe-worker")
        + documents["Deployment", "portal-dispatcher"]["spec"]["replicas"]
        * celery_processes("portal-dispatcher")
        + documents["Deployment", "portal-automation"]["spec"]["replicas"]
        * celery_processes("portal-automation")
        + documents["Deployment", "portal-beat"]["spec"]["replicas"]
    )
    pool = int(documents["ConfigMap", "portal-config"]["data"]["DB_POOL_SIZE"])
    assert "WEB_CONCURRENCY" not in documents["ConfigMap", "portal-config"]["data"]
    assert (processes, pool, processes * pool) == (109, 4, 436)
    guide_says(
        "3 web pods x 3 gunicorn workers + 2-10 probe pods x 9 processes + the dispatcher's 2 "
        "+ 2 automation pods x 3 + 2 beats -> up to 109 processes x 4 = 436 connections",
        "| `DB_POOL_SIZE` (4) |",
    )


def test_beat_sends_the_housekeeping_the_guide_lists_at_its_rates():
    from django.conf import settings

    from portal.celery import app

    every = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert every["healthchecks.tasks.dispatch_due_checks"] == settings.HEALTH_DISPATCH_SECONDS
    assert every["healthchecks.tasks.roll_up_history"] == 60  # every minute
    assert every["healthchecks.tasks.refresh_predictions"] == 60
    assert every["healthchecks.tasks.prune_history"] == 3600  # every hour
    assert every["healthchecks.tasks.apply_maintenance_windows"] == 15  # every 15 s
    assert every["healthchecks.tasks.adapt_rate_limits"] == 15
    assert every["automation.tasks.process_status_changes"] == settings.AUTOMATION_SECONDS
    assert every["portal.tasks.record_heartbeat"] == 30  # "it beats every 30 s"
    guide_says(
        "rollups and predictions every minute, pruning every hour, maintenance windows and the "
        "rate limiter's stress factor every 15 s",
        "beat > 120 s (it beats every 30 s)",
    )
    # Housekeeping goes to the `celery` queue, which the probe workers consume.
    routes = settings.CELERY_TASK_ROUTES
    assert app.conf.task_default_queue == "celery"
    assert "portal.tasks.record_heartbeat" not in routes
    assert "healthchecks.tasks.roll_up_history" not in routes
    assert "healthchecks.tasks.prune_history" not in routes


def test_only_beats_heartbeat_keeps_a_result_and_it_expires_after_an_hour():
    from portal.celery import app

    app.loader.import_default_modules()
    ours = {
        name: task
        for name, task in app.tasks.items()
        if name.split(".")[0] in ("portal", "healthchecks", "automation", "checklists", "services")
    }
    keeping = sorted(name for name, task in ours.items() if not task.ignore_result)
    assert keeping == ["portal.tasks.record_heartbeat"]
    assert app.conf.result_expires == 3600  # seconds: an hour


def alert(name: str) -> str:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return next(r["expr"] for g in rules["groups"] for r in g["rules"] if r["alert"] == name)


def test_the_alert_rules_fire_where_the_guide_says_to_watch():
    guide_says(
        "dispatcher > 30 s, beat > 120 s (it beats every 30 s), worker > 5 min",
        "| `portal_scheduler_lag_seconds` | histogram | | probe start minus due time "
        "| p99 over 250 ms |",
        "| below 0.95: the dispatcher sheds |",
        "| `backend` at 0: the portal itself is not ready |",
        "| `== 3` for a while |",
        "| below 1 for long: the portal is under stress |",
        "| above 0 for minutes |",
    )
    assert alert("PortalDispatcherStalled").endswith('{component="dispatcher"}) > 30')
    assert alert("PortalBeatStalled").endswith('{component="beat"}) > 120')
    assert alert("PortalProbeWorkersSilent").endswith('{component="worker"}) > 300')
    assert alert("PortalSchedulerLagHigh").startswith("histogram_quantile(0.99,")
    assert alert("PortalSchedulerLagHigh").endswith(") > 0.25")
    assert alert("PortalProbesLate") == "min(portal_probe_on_time_ratio) < 0.95"
    assert alert("PortalNotReady") == 'max(portal_service_up{service="backend"}) == 0'
    assert alert("ServiceUnhealthy") == "max by (service) (portal_service_status) == 3"
    assert alert("PortalUnderStress") == "max(portal_rate_limit_factor) < 1"
    assert alert("PortalProbeCapacityExceeded") == "max(portal_probe_skipped_per_second) > 0"


def test_the_storage_figures_are_the_measured_ones():
    """Every figure of the table and the sentences after it, from the benchmark's result."""
    measured = json.loads((ROOT / "bench" / "results" / "history-size.json").read_text())
    per = measured["per_1000_checks"]
    shape, days = measured["shape"], per["retention_days"]
    assert (shape["checks"], shape["hours"], shape["interval_s"], shape["fail_pct"]) == (
        1000,
        2.0,
        30,
        1.0,
    )
    raw_gb = per["retained_mb"]["raw"] / 1000
    total_gb = sum(per["retained_mb"].values()) / 1000
    guide_says(
        "2 hours at a 30 s interval (240,000 results, 1 % failing)",
        f"| {per['raw_bytes_per_result']:g} bytes per result | {per['raw_mb_per_day']:g} MB a day "
        f"({per['results_per_day'] / 1e6:.2f} M results) | {days['raw_days']} days "
        f"| {raw_gb:.2f} GB |",
        f"| {per['rollup_bytes_per_row']:.0f} bytes per check-hour | "
        f"{per['hourly_rollups_mb_per_day']:.1f} MB a day | {days['hourly_days']} days | "
        f"{round(per['retained_mb']['hourly_rollups'], -1):.0f} MB |",
        f"| {per['rollup_bytes_per_row']:.0f} bytes per check-day | "
        f"{per['daily_rollups_mb_per_day']:.2f} MB a day | {days['daily_days']} days | "
        f"{round(per['retained_mb']['daily_rollups'], -1):.0f} MB |",
        f"about {per['bytes_per_failure_episode'] / 1000:.1f} kB",
        f"about {raw_gb:.2f} GB per 1,000 checks at a 30 s interval with the default 7 days",
        "125 MB a day per 1,000 checks at 60 s, 750 MB at 10 s",
        f"needs about {total_gb:.1f} GB for its history",
        "a flapping check adds about 1 kB per flap",
    )
    assert math.isclose(per["raw_mb_per_day"] / 2, 125, abs_tol=0.5)  # "125 MB"
    assert math.isclose(per["raw_mb_per_day"] * 3, 750, abs_tol=1)  # "750 MB"
    assert round(per["bytes_per_failure_episode"] / 1000) == 1  # "about 1 kB per flap"


def production_settings(tmp_path) -> dict:
    """The settings a production process reads: no .env, no DEBUG, the key, hosts, a
    database and a broker (neither contacted)."""
    code = (
        "import json; from django.conf import settings as s; from django.urls import resolve, "
        "Resolver404\n"
        "def served(path):\n"
        "    try:\n"
        "        resolve(path); return True\n"
        "    except Resolver404:\n"
        "        return False\n"
        "names = ['DEBUG', 'DEMO_ENDPOINTS', 'DB_POOL_SIZE', 'DB_READ_TIMEOUT', 'DB_POOL_TIMEOUT',"
        " 'HEALTH_RAW_RETENTION_DAYS', 'HEALTH_HOURLY_RETENTION_DAYS',"
        " 'HEALTH_DAILY_RETENTION_DAYS', 'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE',"
        " 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SESSION_ENGINE', 'RATE_LIMITS_ENABLED',"
        " 'STATUS_PAGE_PUBLIC']\n"
        "print('SETTINGS=' + json.dumps({n: getattr(s, n) for n in names}"
        " | {'demo_served': served('/demo/healthy'),"
        " 'pool': {k: v for k, v in s.DATABASES['default']['OPTIONS']['pool'].items()"
        " if k in ('max_size', 'max_idle')}}))\n"
    )
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORTAL_ENV_FILE": "",
        "PORTAL_VAR_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "portal.example.internal",
        "DATABASE_URL": "postgres://portal:secret@postgres.example.internal:5432/portal",
        "REDIS_URL": "redis://redis.example.internal:6379/0",
    }
    shell = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in shell.stdout.splitlines() if x.startswith("SETTINGS="))
    return json.loads(line.removeprefix("SETTINGS="))


def test_the_production_defaults_are_the_ones_the_guide_states(tmp_path):
    found = production_settings(tmp_path)
    assert found["DEBUG"] is False
    assert (found["DEMO_ENDPOINTS"], found["demo_served"]) == (False, False)
    assert found["DB_POOL_SIZE"] == 4
    # A pool of DB_POOL_SIZE per process, its idle connections closed after a minute.
    assert found["pool"] == {"max_size": 4, "max_idle": 60}
    assert (found["DB_READ_TIMEOUT"], found["DB_POOL_TIMEOUT"]) == (4.0, 3.0)
    assert (
        found["HEALTH_RAW_RETENTION_DAYS"],
        found["HEALTH_HOURLY_RETENTION_DAYS"],
        found["HEALTH_DAILY_RETENTION_DAYS"],
    ) == (7, 35, 400)
    assert found["SECURE_SSL_REDIRECT"] and found["SESSION_COOKIE_SECURE"]
    assert found["CSRF_COOKIE_SECURE"] and found["SECURE_HSTS_SECONDS"] > 0
    assert found["RATE_LIMITS_ENABLED"] is True and found["STATUS_PAGE_PUBLIC"] is False
    assert found["SESSION_ENGINE"] == "django.contrib.sessions.backends.db"
    guide_says(
        "| `HEALTH_RAW_RETENTION_DAYS` (7), `HEALTH_HOURLY_RETENTION_DAYS` (35), "
        "`HEALTH_DAILY_RETENTION_DAYS` (400) |",
        "| `DEMO_ENDPOINTS` | follows `DEBUG`; must stay `false` (it is, with `DEBUG` off) |",
        "legitimately runs longer than 4 s",
        "pools close idle connections after a minute",
        "(all on without `DEBUG`;",
        "Sessions are in PostgreSQL (Django's database backend), not in Redis.",
    )

"""`make run` on PostgreSQL and Redis as the README's "Quick start" says it behaves: each
process holds at most DB_POOL_SIZE (4) connections, so its web server, two worker pool
processes and beat hold 16 at most, with no error line in its log; and Ctrl-C stops all
three, leaving no process behind and the port free.

The connection count is sampled every second over PORTAL_MEASURE_SECONDS (60 by default);
with PORTAL_MEASURE_RESULTS set to a path, the measurement is also written there as JSON
(the README's ten-minute figure: bench/results/make-run-connections.json)."""

import contextlib
import json
import os
import platform
import signal
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.healthchecks.servers import closed_port
from tests.portal import live_portal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MEASURE_SECONDS = float(os.environ.get("PORTAL_MEASURE_SECONDS", "60"))


def connections_of(application: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application]
        )
        return cursor.fetchone()[0]


def test_make_run_holds_at_most_16_database_connections_and_logs_no_error(tmp_path):
    assert settings.DB_POOL_SIZE == 4  # the default the README states
    application = f"portal-make-run-{uuid.uuid4().hex[:8]}"
    port = closed_port()
    env = live_portal.portal_env(port, tmp_path / "var", PGAPPNAME=application)
    live_portal.load_demo(port, env)
    log = tmp_path / "make-run.log"
    portal = live_portal.start(port, env, log)
    samples = []
    try:
        base = f"http://127.0.0.1:{port}"
        live_portal.wait_until_up(f"{base}/health/", portal)
        began = time.monotonic()
        while time.monotonic() - began < MEASURE_SECONDS:
            assert portal.poll() is None, log.read_text()[-2000:]
            # People and probes read meanwhile (runserver may be reloading: no answer then).
            with contextlib.suppress(OSError):
                live_portal.get(f"{base}/health/services")
                live_portal.get(f"{base}/health/service/backend")
            samples.append(connections_of(application))
            time.sleep(max(0.0, began + len(samples) - time.monotonic()))
    finally:
        assert live_portal.stop(portal) == 0
        connection.close()
    peak = max(samples)
    print(f"{len(samples)} samples over {MEASURE_SECONDS:g} s: at most {peak} connections")
    assert 1 <= peak <= 16, samples
    assert live_portal.error_lines(log) == [], log.read_text(errors="replace")[-3000:]
    if target := os.environ.get("PORTAL_MEASURE_RESULTS"):
        record(Path(target), samples, log)


def record(path: Path, samples: list[int], log: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "measurement": "make run's PostgreSQL connections (README, Quick start)",
                "how": "runportal with the demo on PostgreSQL and Redis, DB_POOL_SIZE=4, "
                "concurrency 2; pg_stat_activity counted every second by application name "
                "while /health/services and /health/service/backend are read; tests/system/"
                "test_make_run_promises.py with PORTAL_MEASURE_SECONDS",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
                "seconds": MEASURE_SECONDS,
                "samples": len(samples),
                "max_connections": max(samples),
                "mean_connections": round(sum(samples) / len(samples), 2),
                "error_lines": 0,
                # In a checkout being edited, runserver reloads (and its pool starts again).
                "web_reloads": log.read_text(errors="replace").count("changed, reloading"),
            },
            indent=2,
        )
        + "\n"
    )


def test_ctrl_c_stops_the_web_server_worker_and_beat_and_frees_the_port(tmp_path):
    port = closed_port()
    env = live_portal.portal_env(port, tmp_path / "var")
    portal = live_portal.start(port, env, tmp_path / "make-run.log")
    everything: set[int] = set()
    try:
        live_portal.wait_until_up(f"http://127.0.0.1:{port}/health/", portal)
        deadline = time.monotonic() + 60
        while not all(
            any(word in command(pid) for pid in live_portal.descendants(portal.pid))
            for word in ("runserver", "worker", "beat")
        ):
            assert time.monotonic() < deadline, "web, worker and beat did not all start"
            time.sleep(0.2)
        everything = live_portal.descendants(portal.pid)
        assert live_portal.stop(portal, signal.SIGINT) == 0
        deadline = time.monotonic() + 15
        while [pid for pid in everything if live_portal.alive(pid)]:
            assert time.monotonic() < deadline, "a process of make run outlived Ctrl-C"
            time.sleep(0.2)
        with socket.socket() as sock:  # free again: the next make run listens there
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does
            sock.bind(("127.0.0.1", port))
            sock.listen()
    finally:
        for pid in [portal.pid, *everything]:
            if live_portal.alive(pid):
                os.kill(pid, signal.SIGKILL)


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""

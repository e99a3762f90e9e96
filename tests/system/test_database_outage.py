"""The portal with its database unreachable or hung, served as the image runs it (gunicorn):
readiness answers 503 naming the database within two seconds, and every other request a JSON
503 in the error shape within 5 s -- never a worker killed after 30 s with an HTML 500. (A
database that goes silent on connections already open: tests/system/test_faults.py.)"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from tests.healthchecks.servers import closed_port as free_port

# The rate limiter stays on: it must not turn an outage into a 500 (it reads the session).
pytestmark = [pytest.mark.django_db, pytest.mark.ratelimit, pytest.mark.serial]


@pytest.fixture
def hung_database():
    """A 'PostgreSQL' that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def refusing_database():
    return free_port()  # nothing listens: connections are refused at once


def image_command() -> list[str]:
    """The web process's command as the image runs it (the Dockerfile's CMD), without its
    address: the tests bind a free port."""
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    command = json.loads(next(line[4:] for line in dockerfile.splitlines() if line[:4] == "CMD "))
    for flag in ("--bind", "-b"):
        while flag in command:
            at = command.index(flag)
            del command[at : at + 2]
    return command


def start_portal(
    database_port: int,
    *,
    database: str = "portal",
    redis_url: str = "",
    log=None,
    access_log=None,
) -> tuple[subprocess.Popen, str]:
    """gunicorn as the image runs it (two workers here), on this database (and Redis), with
    the default settings; its log into ``log`` (a file) if given, and each answer as
    "<worker pid> <status> <path>" into ``access_log`` (a path) if given."""
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{database_port}/{database}",
        "REDIS_URL": redis_url or settings.REDIS_URL,
        "LOG_LEVEL": "warning",
    }
    gunicorn = image_command()
    assert gunicorn[0] == "gunicorn", gunicorn
    logging = ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s %(U)s"]
    server = subprocess.Popen(
        [sys.executable, "-m", *gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        + (logging if access_log else []),
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health/", timeout=1)  # no database needed
            return server, base
        except OSError:
            time.sleep(0.2)
    server.kill()
    pytest.fail("gunicorn did not start")


def get(url: str, headers: dict | None = None) -> tuple[int, dict, dict, float]:
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            status, body, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, body, head = error.code, error.read(), dict(error.headers)
    return status, json.loads(body), head, time.monotonic() - started


@pytest.fixture(params=["hung", "refusing"])
def outage(request, hung_database, refusing_database):
    port = hung_database if request.param == "hung" else refusing_database
    server, base = start_portal(port)
    yield base
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_readiness_is_a_503_naming_the_database_within_two_seconds(outage):
    status, body, _, took = get(f"{outage}/health/service/backend")
    assert status == 503 and took < 2.0, (status, took)
    database = next(c for c in body["checks"] if c["name"] == "database")
    assert database["status"] == "unhealthy" and database["errors"][0].startswith("database: ")
    assert body["status"] == "unhealthy"
    status, body, _, took = get(
        f"{outage}/health/service/backend", {"Accept": "application/health+json"}
    )
    assert status == 503 and body["status"] == "fail" and took < 2.0
    assert body["checks"]["database:responseTime"][0]["status"] == "fail"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/health/services", {}),
        ("/health/service/payments", {}),
        ("/api/services", {"Authorization": "Bearer svp_" + "x" * 40}),
    ],
)
def test_other_requests_answer_a_json_503_within_5_seconds(outage, path, headers):
    status, body, head, took = get(f"{outage}{path}", headers)
    assert status == 503, (status, body)
    assert body["error"]["code"] == "database_unavailable" and body["error"]["request_id"]
    assert head["Retry-After"] == "5"
    assert took < 5.0  # DB_POOL_TIMEOUT (3 s) waiting for a connection, and no more

"""Every log line is a JSON object, served as in production.

The README ("Errors"): every log line is a JSON object carrying the request id, and each
request logs one ``portal.access`` line. Run as the image runs it -- gunicorn with
portal/gunicorn.conf.py and nothing else but the address and one worker -- everything the
web process writes on stdout and stderr, from starting to shutting down, is read line by
line. (gunicorn's own lines were plain text, and it wrote an Apache-style access line per
request beside the portal's, without the request id.)
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import database_url
from tests.healthchecks.servers import closed_port

BASE = Path(settings.BASE_DIR)
SCENARIOS = {  # (path, request id, status): answers of each kind, a 5xx included
    "database up": [
        ("/health/", "log-trial-ok", 200),
        ("/api/services", "log-trial-401", 401),
        ("/api/no-such-operation", "log-trial-404", 404),
        ("/health/service/ghost", "log-trial-health-404", 404),
    ],
    # A database that is not there: the 503 database_unavailable, which Django logged once
    # more after the middleware, without the request id.
    "database gone": [
        ("/health/", "log-trial-live", 200),
        ("/health/service/ghost", "log-trial-503", 503),
    ],
}


def fetch(port: int, path: str, request_id: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"X-Request-ID": request_id}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.fixture(params=SCENARIOS)
def served(request, django_db_setup, tmp_path):
    """gunicorn as the Dockerfile's CMD runs it; its stdout and stderr kept in files."""
    database = database_url()
    if request.param == "database gone":
        database = database.rsplit("/", 1)[0] + "/no_such_database_for_log_trial"
    port = closed_port()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": database,
        "DB_POOL_TIMEOUT": "1",
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "info",
        "RATE_LIMITS_ENABLED": "false",
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn.conf.py"]
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [*command, "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=BASE,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if fetch(port, "/health/", "log-trial-start") == 200:
                    break
            except urllib.error.URLError:
                pass  # not listening yet
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield SCENARIOS[request.param], port, server, out, err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.django_db(transaction=True)
def test_every_line_the_web_process_writes_is_a_json_object_with_the_request_id(served):
    requests, port, server, out, err = served
    for path, request_id, status in requests:
        assert fetch(port, path, request_id) == status, path
    server.send_signal(signal.SIGTERM)  # its shutdown is logged too
    assert server.wait(timeout=30) == 0
    lines = [line for f in (out, err) for line in f.read_text().splitlines() if line.strip()]
    not_json = []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            not_json.append(line)
        else:
            records.append(record)
    assert not_json == [], "\n".join(not_json[:10])
    for path, request_id, status in requests:
        access = [
            r
            for r in records
            if r.get("logger") == "portal.access" and r.get("request_id") == request_id
        ]
        assert len(access) == 1, (path, access)  # one line per request, no second one
        assert access[0]["status"] == status and access[0]["path"] == path
    # Every line about a request carries its id (Django's "Service Unavailable: <path>" did
    # not), and there is one access line per request and the start-up probe's: no other.
    paths = {path for path, _, _ in requests}
    about_requests = [
        r for r in records if r.get("path") in paths or any(p in str(r["event"]) for p in paths)
    ]
    assert all(r.get("request_id") for r in about_requests), about_requests
    access_lines = [r for r in records if r.get("logger") == "portal.access"]
    assert len(access_lines) == len(requests) + 1

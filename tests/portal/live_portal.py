"""`make run` as a test can run it: the demo loaded on the test database, then `runportal`
(web server, worker, beat) on a free port, on PostgreSQL and Redis, in a new shell's
environment; and the few ways a test looks at it from outside."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from portal.roles import grant_role_permissions
from tests.conftest import database_url

MANAGE = str(settings.BASE_DIR / "manage.py")


def shell_env(**values: str) -> dict:
    """A new shell's environment: PATH and HOME, nothing the test process set up."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **values}


def portal_env(port: int, var: Path, **extra: str) -> dict:
    return shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        PORTAL_VAR_DIR=str(var),
        PORTAL_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_FORMAT="console",  # what make run's .env sets
        **extra,
    )


def load_demo(port: int, env: dict) -> None:
    """`make run`'s steps before runportal: the portal's own checks and the demo (its logins
    join the role groups a migration makes, which an earlier transactional test's flush
    took: made again first)."""
    grant_role_permissions(MigrationLoader(connection).project_state().apps)  # as migrated
    for command in (["register_self"], ["load_demo", "--base-url", f"http://127.0.0.1:{port}"]):
        done = subprocess.run(
            [sys.executable, MANAGE, *command],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]


def start(port: int, env: dict, log: Path) -> subprocess.Popen:
    """`make run`'s last step, its output (every child's) going to ``log``."""
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, MANAGE, "runportal", "--addr", f"127.0.0.1:{port}"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job
        )


def stop(process: subprocess.Popen, sig=signal.SIGINT) -> int:
    """Ctrl-C: the signal to the whole process group, as a terminal sends it."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> tuple[int, dict]:
    status, body = get(url)
    return status, json.loads(body)


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            get(url, timeout=1)
            return
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def descendants(pid: int) -> set[int]:
    found = set()
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found |= {child} | descendants(child)
    return found


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


# An error as each logger writes it: structlog's JSON and console renderers, Celery's own
# format ("[...: ERROR/MainProcess]"), Python's tracebacks.
ERROR_MARKS = (
    '"level": "error"',
    '"level": "critical"',
    "[error",
    "[critical",
    ": error/",
    ": critical/",
    "traceback (most recent call last)",
)


def error_lines(log: Path) -> list[str]:
    """Lines of the log at error level or with a traceback."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        lowered = line.lower()
        if any(mark in lowered for mark in ERROR_MARKS):
            found.append(line)
    return found

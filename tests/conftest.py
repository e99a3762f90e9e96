import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from pytest_httpserver import HTTPServer

from portal import encryption, ratelimit, tokens
from portal.auth import system_actor

# `make test` runs the suite on PostgreSQL, then the parts that have a branch of their own
# for the embedded mode's SQLite (marked `sqlite`) on SQLite: PORTAL_TEST_DATABASE=sqlite.
ON_SQLITE = os.environ.get("PORTAL_TEST_DATABASE") == "sqlite"


# The system tier (`make test` runs it, `make check` leaves it out): the tests under
# tests/system -- the contracts over the whole portal (authorization matrix, write contract,
# fuzz, hostile input), faults, the portal run as processes (make run, runportal, gunicorn, a
# fresh process reading its settings) and the browser -- and, wherever they live, the tests
# that start a real Celery worker, drive a browser or fuzz a live server.
SYSTEM_DIR = Path(__file__).resolve().parent / "system"
SYSTEM_MARKERS = ("worker", "browser", "fuzz")
# The system tier runs in three parts. Most of it measures nothing and runs in parallel
# beside the fast tier. Tests that start real processes and wait on them -- a real Celery
# worker, `make run`, runportal (marker `processes`; every worker test has it) -- run two at a
# time: they mostly wait, and two leave a core free. The tests whose deadlines are the promise
# -- the rate limiter, faults answered within seconds, a beat's takeover (marker `serial`) --
# run alone: beside other tests they would measure the machine's load.
PROCESS_MARKERS = ("processes", "worker")


def is_system(item) -> bool:
    return SYSTEM_DIR in item.path.parents or any(
        item.get_closest_marker(name) for name in SYSTEM_MARKERS
    )


def starts_processes(item) -> bool:
    return not item.get_closest_marker("serial") and any(
        item.get_closest_marker(name) for name in PROCESS_MARKERS
    )


def pytest_collection_modifyitems(config, items):
    """Marks the system tier and its part that starts processes; on SQLite, only the tests
    marked `sqlite` (and not `postgresql`) run."""
    for item in items:
        if is_system(item):
            item.add_marker(pytest.mark.system)
        if starts_processes(item):
            item.add_marker(pytest.mark.processes)
    if not ON_SQLITE:
        return
    keep, drop = [], []
    for item in items:
        runs = item.get_closest_marker("sqlite") and not item.get_closest_marker("postgresql")
        (keep if runs else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(autouse=True, scope="session")
def _real_database(django_db_setup, django_db_blocker):
    """The suite is written for PostgreSQL (advisory locks, row counts, constraints); its
    `sqlite` part runs on SQLite too."""
    with django_db_blocker.unblock():
        expected = "sqlite" if ON_SQLITE else "postgresql"
        if connection.vendor != expected:
            pytest.exit(f"this run expects {expected}, not {connection.vendor} (see Makefile)", 2)


@pytest.fixture(autouse=True, scope="session")
def _flush_by_delete():
    """The flush after each transactional test empties the tables with DELETE instead of
    PostgreSQL's TRUNCATE: truncating 46 all but empty tables makes and syncs a new file for
    each (0.25-0.37 s a flush here, against 0.04 s), paid by some 300 tests of the fast tier.
    The foreign keys are deferred (Django makes them so), so the order does not matter; the
    sequences are not reset either way."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [f"DELETE FROM {self.quote_name(table)};" for table in tables]  # noqa: S608 (names from the schema)

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = truncate


class HttpServers:
    """Loopback HTTP servers (pytest-httpserver) started once per session and lent to one test
    at a time: stopping one costs half a second (werkzeug's shutdown poll), which a fixture
    per test paid hundreds of times. A returned server is cleared of its handlers and log, so
    a test sees only what it set up."""

    def __init__(self) -> None:
        self.idle: list[HTTPServer] = []
        self.started: list[HTTPServer] = []

    @contextmanager
    def borrow(self):
        if self.idle:
            server = self.idle.pop()
        else:
            server = HTTPServer(host="127.0.0.1", threaded=True)
            server.start()
            self.started.append(server)
        try:
            yield server
        finally:
            server.clear()
            self.idle.append(server)

    def stop(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture(scope="session")
def http_servers():
    servers = HttpServers()
    yield servers
    servers.stop()


@pytest.fixture(autouse=True)
def _quick_password_hashing(request, settings):
    """Django's PBKDF2 takes half a second per password made or checked, by design; outside
    the system tier, whose portals in other processes must read the hashes a test makes,
    passwords are hashed with Django's quick test hasher (PBKDF2 still reads them)."""
    if request.node.get_closest_marker("system") is None:
        settings.PASSWORD_HASHERS = [
            "django.contrib.auth.hashers.MD5PasswordHasher",
            *settings.PASSWORD_HASHERS,
        ]


@pytest.fixture(autouse=True)
def _fresh_encryption_keys():
    """Keys are cached per process; a test that changes SECRET_KEY must not leak them."""
    encryption.reset_keys()
    yield
    encryption.reset_keys()


@pytest.fixture(autouse=True)
def _rate_limits(request, settings):
    """The suite sends thousands of requests a minute from one client: the limiter is off
    except in the tests that prove it (marked ``ratelimit``)."""
    settings.RATE_LIMITS_ENABLED = request.node.get_closest_marker("ratelimit") is not None
    ratelimit.LIMITER.local = ratelimit.LocalBuckets()
    ratelimit.LIMITER.set_factor(1.0)


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (the suite's own index, never 0)."""
    url = settings.REDIS_URL
    if url and not url.rstrip("/").endswith("/0") and urlsplit(url).path not in ("", "/"):
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()


def database_url() -> str:
    """The URL of the database this test run uses (for processes the tests start)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def start_worker():
    """Start a real Celery worker (prefork, one child) on the test database and Redis,
    consuming the given queues; stopped by PID at the end of the test."""
    if not settings.REDIS_URL:
        pytest.fail("worker tests need REDIS_URL (make test sets it)")
    started = []

    def start(queues: list[str], **environ: str) -> subprocess.Popen:
        env = {**os.environ, "DEBUG": "true", "DATABASE_URL": database_url(), **environ}
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-Q",
                ",".join(queues),
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a test may kill it whole
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is not None:
            continue
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


class ApiClient(Client):
    """A test client that speaks JSON and sends a bearer token."""

    def __init__(self, secret: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.secret = secret

    def _headers(self, headers):
        headers = dict(headers or {})
        if self.secret:
            headers.setdefault("Authorization", f"Bearer {self.secret}")
        return headers

    def call(self, method: str, path: str, body=None, headers=None, raw=None):
        kwargs = {"headers": self._headers(headers)}
        if raw is not None or body is not None:
            kwargs["data"] = raw if raw is not None else json.dumps(body)
            kwargs["content_type"] = "application/json"
        return self.generic(method.upper(), path, **kwargs)


ISSUER = system_actor("tests")


@pytest.fixture
def make_token(db):
    def make(scopes, *, services=None, teams=None, name=None, expires_in=None):
        name = name or f"token-{len(scopes)}-{tokens.new_secret()[-8:]}"
        return tokens.issue_token(
            name,
            list(scopes),
            services=services,
            teams=teams,
            expires_in=expires_in,
            issuer=ISSUER,
        )

    return make


@pytest.fixture
def api(make_token):
    """Client with every registry scope."""
    return ApiClient(make_token(["registry:read", "registry:write"]).secret)


@pytest.fixture
def reader(make_token):
    return ApiClient(make_token(["registry:read"]).secret)


@pytest.fixture
def anonymous():
    return ApiClient()


def _user(username: str, role: str | None, **extra) -> User:
    user = User.objects.create_user(username, f"{username}@example.invalid", "pw", **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def alice(db):
    """An operator."""
    return _user("alice", "operator")


@pytest.fixture
def bob(db):
    """A viewer (no role group)."""
    return _user("bob", None)


@pytest.fixture
def admin_user(db):
    return _user("root", None, is_staff=True, is_superuser=True)


@pytest.fixture
def manifest():
    return {
        "teams": [{"name": "core"}],
        "services": [
            {
                "name": "payments",
                "team": "core",
                "is_critical": True,
                "dependencies": ["auth", {"service": "ledger-db", "kind": "soft"}],
            },
            {"name": "auth", "team": "core"},
            {"name": "ledger-db", "team": "core"},
        ],
    }

"""A canary secret stored where the portal keeps secrets -- a configuration's secret field, a
notification channel's URL, a health check's header -- is used for real (the check sends the
header to its target, the channel posts to its receiver) and then looked for everywhere else
the portal writes: every API answer and page a reader without ``config:secrets`` gets (the
admin included, as operator and as viewer), everything logged at debug level, the Celery
messages in the broker, a ``pg_dump`` of the database and every key of the Redis database. It
must appear in none of them: at rest it is ciphertext, on the way out it is masked.

Run it alone: ``make test ARGS=tests/system/test_canary_secret.py``.
"""

import base64
import json
import logging
import re
import socket
import subprocess
import uuid

import pytest
import redis
import requests
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from pytest_httpserver import HTTPServer
from structlog.stdlib import ProcessorFormatter
from werkzeug import Response

from automation import channels, notify
from automation.models import Alert, DeliveryAttempt, NotificationChannel
from automation.tasks import process_status_changes
from healthchecks.engine import verification
from healthchecks.models import CheckSchedule, HealthCheck
from healthchecks.tasks import dispatch_due_checks, probe_batch
from portal.api import api
from portal.models import Scope
from services.models import ConfigVersion, Deployment
from tests.factories import seed_schema_with_secret

pytestmark = [
    # The portal is served by a live server in another thread: everything must be committed.
    pytest.mark.django_db(transaction=True),
    # The limiter on, as in production: its keys belong in the Redis dump too.
    pytest.mark.ratelimit,
]

NAME = "vault"  # the service, its check and the channel: every {name} and {check} of the API
READER_SCOPES = sorted(set(Scope.values) - {Scope.CONFIG_SECRETS})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Everything(logging.Handler):
    """Every record any logger passes to the root, rendered as the portal renders its log
    lines, plus its raw message and arguments (a formatter could drop what a record holds)."""

    def __init__(self, formatter):
        super().__init__(level=logging.DEBUG)
        self.formatter_ = formatter
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "werkzeug":
            return  # the test's own target and receiver (pytest-httpserver), not the portal
        raw = f"{record.name} {record.msg!r} {record.args!r}"
        try:
            rendered = self.formatter_.format(record)
        except Exception as exc:  # the line as the portal would have failed to write it
            rendered = f"unformattable: {exc}"
        self.lines.append(f"{rendered}\n    raw: {raw}")


@pytest.fixture
def logs():
    """Everything logged during the test, at debug level (the most the portal can be told to
    say: LOG_LEVEL=debug), in the portal's own format."""
    root = logging.getLogger()
    portal = next(h for h in root.handlers if isinstance(h.formatter, ProcessorFormatter))
    handler = Everything(portal.formatter)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.setLevel(level)
    root.removeHandler(handler)


@pytest.fixture
def role_groups(transactional_db):
    """The role groups, which the flush between live-server tests empties."""
    from django.apps import apps

    from portal.roles import grant_role_permissions

    grant_role_permissions(apps)


@pytest.fixture
def automation_now(settings):
    """Deliveries due at once and retried at once: the test sends, fails and resends now."""
    settings.AUTOMATION_GROUP_SECONDS = 0.001
    settings.AUTOMATION_RETRY_SECONDS = 0.001


@pytest.fixture
def target():
    """The check's target: answers 503 (so the service goes down and the channel is told)."""
    server = HTTPServer(host="127.0.0.1", port=free_port())
    server.expect_request("/health").respond_with_response(Response("down", status=503))
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def receiver():
    """The channel's receiver, not started yet: the first send fails to connect."""
    server = HTTPServer(host="127.0.0.1", port=free_port())
    server.expect_request(re.compile("^/notify/")).respond_with_data("ok")
    yield server
    server.clear()
    if server.is_running():
        server.stop()


class Http(requests.Session):
    """Plain HTTP to the live server: paths relative to it, redirects not followed (each
    answer is read as it is), a timeout on every call."""

    def __init__(self, base_url: str, headers: dict | None = None, cookies: dict | None = None):
        super().__init__()
        self.base_url = base_url
        self.headers.update(headers or {})
        self.cookies.update(cookies or {})

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, self.base_url + url, *args, **kwargs)


def call(http: Http, method: str, path: str, body=None, **kwargs) -> requests.Response:
    response = http.request(method, path, json=body, **kwargs)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response


def store_the_canary(http, canary: str, target: HTTPServer, receiver: HTTPServer) -> None:
    """Through the API, as a pipeline would: a schema with a secret and three versions (the
    secret added, then kept by sending the mask back), a check with the canary in a header,
    a channel with it in the URL's password and path."""
    call(http, "PUT", "/api/teams/core", {})
    call(http, "POST", "/api/services", {"name": NAME, "team": "core", "is_critical": True})
    base = f"/api/services/{NAME}/config"
    call(http, "PUT", f"{base}/schema", seed_schema_with_secret())
    call(http, "POST", base, {"values": {"api_timeout": 10}, "base_version": 0})
    secret = {"api_timeout": 10, "db_password": canary}
    call(http, "POST", base, {"values": secret, "base_version": 1, "comment": "a password"})
    kept = {"api_timeout": 20, "db_password": "********"}
    call(http, "POST", base, {"values": kept, "base_version": 2})
    check = {
        "kind": "http",
        "target": target.url_for("/health"),
        "interval": 60,
        "timeout": 5,
        "headers": {"Authorization": f"Bearer {canary}"},
    }
    call(http, "PUT", f"/api/services/{NAME}/checks/{NAME}", check)
    url = f"json://hook:{canary}@127.0.0.1:{receiver.port}/notify/{canary}"
    call(http, "PUT", f"/api/notification-channels/{NAME}", {"url": url})


def api_reads() -> list[str]:
    """Every GET operation of the API document, its path parameters filled with what exists,
    and the variants that show a secret in another form (env, one version, a diff)."""
    alert_id = Alert.objects.values_list("id", flat=True).first() or 0
    deployment_id = Deployment.objects.values_list("id", flat=True).first() or 0
    values = {
        "name": NAME,
        "check": NAME,
        "alert_id": alert_id,
        "window_id": 1,
        "deployment_id": deployment_id,
    }
    paths = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        if "get" not in operations:
            continue
        if "{number}" in path:
            paths += [path.format(number=n, name=NAME) for n in (1, 2, 3)]
        else:
            paths.append(path.format(**values))
    base = f"/api/services/{NAME}/config"
    return [
        *paths,
        "/api/openapi.json",
        f"{base}?format=env",
        f"{base}?version=2",
        f"{base}?version=2&format=env",
        *(f"{base}/diff?from_version={a}&to_version={b}" for a, b in ((1, 2), (2, 3), (1, 3))),
        f"/api/services?q={NAME}",
    ]


HEALTH_READS = [
    "/health/",
    "/health/services",
    f"/health/service/{NAME}",
    f"/health/service/{NAME}/history",
    "/health/metrics",
    "/health/predictive",
    "/health/openapi.json",
    "/metrics",
]


def page_reads() -> list[str]:
    """The pages, and every admin list and every object's change page (the service's
    configuration form too), whatever the admin registers."""
    pages = [
        "/",
        "/wall/",
        "/map/",
        "/status/",
        "/config/drift",
        f"/services/{NAME}/",
        "/maintenance/",
        "/admin/",
    ]
    for model in admin.site._registry:
        meta = model._meta
        try:
            pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        except NoReverseMatch:
            continue
        for pk in model.objects.values_list("pk", flat=True)[:50]:
            pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk]))
    service_pk = HealthCheck.objects.get(name=NAME).service_id
    pages.append(f"/admin/services/service/{service_pk}/config/")
    return pages


def session_client(base_url: str, user) -> Http:
    client = Client()
    client.force_login(user)
    cookies = {"sessionid": client.cookies[settings.SESSION_COOKIE_NAME].value}
    return Http(base_url, cookies=cookies)


def redis_contents(url: str) -> list[str]:
    """Every key of the portal's Redis database with its value, whatever its type; a Celery
    message's body (base64 in the broker's lists) decoded beside it."""
    client = redis.Redis.from_url(url)
    found = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [repr(entry).encode() for entry in client.xrange(key)]
        else:
            values = [f"<{kind}>".encode()]
        for value in values:
            found.append(f"{key!r} ({kind}): {value!r}")
            found += [f"{key!r} decoded: {body}" for body in _celery_bodies(value)]
    client.close()
    return found


def _celery_bodies(value) -> list[str]:
    try:
        message = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return []
    if isinstance(message, dict) and "body" in message:
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode("utf-8", "replace")
        return [str(body)]
    return []


def pg_dump() -> str:
    db = connection.settings_dict
    done = subprocess.run(
        [
            *("pg_dump", "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432)),
            *("-U", db["USER"], "--no-owner", db["NAME"]),
        ],
        capture_output=True,
        text=True,
        env={"PGPASSWORD": db["PASSWORD"] or "", "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def hits(canary: str, place: str, texts: list[str]) -> list[str]:
    """Where the canary shows, by its random part in any case (an env export upper-cases)."""
    mark = canary.removeprefix("canary-").lower()
    found = []
    for text in texts:
        at = text.lower().find(mark)
        if at >= 0:
            found.append(f"{place}: ...{text[max(0, at - 300) : at + 100]}...")
    return found


def staff(username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def use_the_canary(http: Http, canary: str, target: HTTPServer, receiver: HTTPServer) -> None:
    """Where it is meant to go: the check sends the header to its target; the service is
    down, so the channel is told -- first its receiver refuses the connection (an error the
    attempt keeps, without the URL's secrets), then it answers. Then the Celery messages:
    the automation sender and a probe batch, queued with no worker to take them; the batch
    is run here as a worker would run it (the engine's own log lines)."""
    call(http, "POST", f"/api/services/{NAME}/checks/{NAME}/run")
    assert [request.headers.get("Authorization") for request, _ in target.log] == [
        f"Bearer {canary}"
    ]
    process_status_changes()  # in this process; it queues send_due_deliveries in the broker
    assert notify.send_due() == 1
    failed = DeliveryAttempt.objects.get()
    assert not failed.ok and "with url: /notify/****" in failed.error, failed.error
    receiver.start()
    assert notify.send_due() == 1
    assert DeliveryAttempt.objects.filter(ok=True).count() == 1
    (request, _), *_ = receiver.log
    assert request.path == f"/notify/{canary}" and request.authorization.password == canary
    # A release reported now is verified on the next probe: its verdict's evidence (the
    # check's error) is among what everyone reads.
    call(http, "POST", f"/api/services/{NAME}/deployments", {"version": "canary-1"})
    CheckSchedule.objects.update(next_due_at=timezone.now())
    assert dispatch_due_checks() == 1
    # The worker's part, in this process, on the message the dispatcher queued (left queued).
    with redis.Redis.from_url(settings.REDIS_URL) as broker:
        queued = broker.lindex("probes", 0)
    args, kwargs, _ = json.loads(_celery_bodies(queued)[0])
    assert probe_batch(*args, **kwargs)["probed"] == 1
    assert len(target.log) == 2
    verification.verify_pending(timezone.now())
    assert Deployment.objects.get().verification_state in ("passed", "failed")


def read_everything(base_url: str, http: Http) -> list[str]:
    """Every API read with the token (every scope but config:secrets), the health surface
    without one too, and the pages and admin as an operator and as a viewer: each answer
    with its headers. None may be a server error (it could hide what a page would show)."""
    answers, statuses = [], {}
    reads = [(http, p) for p in [*api_reads(), *HEALTH_READS]]
    reads += [(Http(base_url), p) for p in ["/api/openapi.json", *HEALTH_READS]]
    for role in ("operator", "viewer"):
        browser = session_client(base_url, staff(f"a-{role}", role))
        reads += [(browser, p) for p in page_reads()]
    for client, path in reads:
        response = client.get(path)
        down = path.startswith("/health/service/") and response.status_code == 503
        assert response.status_code < 500 or down, f"GET {path}: {response.status_code}"
        statuses.setdefault(path, set()).add(response.status_code)
        answers.append(f"GET {path} {response.status_code} {response.headers} {response.text}")
    # The reads reached the objects (not only refusals or redirects to the login page).
    check, channel = HealthCheck.objects.get(), NotificationChannel.objects.get()
    for path in (
        f"/api/services/{NAME}/config",
        f"/api/services/{NAME}/checks/{NAME}",
        f"/api/notification-channels/{NAME}",
        f"/services/{NAME}/",
        f"/admin/healthchecks/healthcheck/{check.pk}/change/",
        f"/admin/automation/notificationchannel/{channel.pk}/change/",
        f"/admin/services/service/{check.service_id}/config/",
    ):
        assert 200 in statuses[path], f"GET {path}: {statuses[path]}"
    return answers


def test_a_canary_secret_shows_nowhere_but_where_it_is_used(
    live_server, make_token, logs, role_groups, automation_now, target, receiver
):
    canary = f"canary-{uuid.uuid4().hex}"
    token = make_token(READER_SCOPES, name="every-scope-but-secrets").secret
    http = Http(live_server.url, headers={"Authorization": f"Bearer {token}"})
    store_the_canary(http, canary, target, receiver)
    use_the_canary(http, canary, target, receiver)
    # The search would find it: a reader with config:secrets gets it in the clear.
    secrets = make_token([Scope.CONFIG_READ, Scope.CONFIG_SECRETS], name="secret-reader")
    config = Http(live_server.url, headers={"Authorization": f"Bearer {secrets.secret}"})
    assert hits(canary, "control", [config.get(f"/api/services/{NAME}/config").text])

    answers = read_everything(live_server.url, http)
    dump = pg_dump()
    stored = redis_contents(settings.REDIS_URL)

    # What was searched holds the things the canary is in: the ciphertexts, the messages,
    # the access log.
    ciphertext = re.search(
        r"gAAAA[\w-]+=*", json.dumps(ConfigVersion.objects.get(version=2).values)
    )
    assert ciphertext and ciphertext.group() in dump
    assert NotificationChannel.objects.get().url in dump
    assert HealthCheck.objects.get().secrets in dump
    assert any("probe_batch" in line for line in stored), "no probe batch in the broker"
    assert any("send_due_deliveries" in line for line in stored), "no automation task"
    assert any(f"/api/services/{NAME}/config" in line for line in logs), "no access log"
    leaks = [
        *hits(canary, "answer", answers),
        *hits(canary, "log", logs),
        *hits(canary, "redis", stored),
        *hits(canary, "pg_dump", [dump]),
    ]
    assert not leaks, "the canary leaked:\n" + "\n".join(leaks)


def test_a_notifiers_error_is_kept_without_the_urls_secrets():
    """A socket error names the URL path it failed to reach: the attempt row (shown to readers
    of alerts) keeps what ``masked`` shows, never the password, path token or option values."""
    url = "json://hook:pass-canary-1@127.0.0.1:9/notify/path-canary-2?+X-Token=hdr-canary-3"
    said = (
        "Socket Exception: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries "
        "exceeded with url: /notify/path-canary-2 (pass-canary-1, hdr-canary-3)"
    )
    kept = channels.redact(said, url)
    assert "canary" not in kept
    assert "host='127.0.0.1', port=9" in kept and "with url: /notify/****" in kept


def test_urllib3_says_nothing_at_debug_level():
    """It logs each notifier call's URL (a token) at debug level: kept out whatever
    LOG_LEVEL is."""
    assert not logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.DEBUG)

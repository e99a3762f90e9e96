"""A small estate whose health the tests move through the real engine (each check probes a
local HTTP server whose answers a test controls), and receivers that notifications reach
through apprise's real json:// plugin."""

import json
import re
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from automation import alerts, notify
from automation.channels import ChannelIn, put_channel
from healthchecks import checks
from portal.auth import system_actor
from services.models import Dependency, DependencyKind, Team
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, make_check

ACTOR = system_actor("tests")


class Targets:
    """One HTTP server; GET /<service> answers 200, or 500 for the services marked down."""

    def __init__(self, server: HTTPServer | None = None):
        self.down: set[str] = set()
        self.server = server or HTTPServer(host="127.0.0.1", threaded=True)
        self.server.expect_request(re.compile(r"/.*")).respond_with_handler(self._answer)

    def _answer(self, request):
        name = request.path.strip("/")
        return Response("fail" if name in self.down else "ok", 500 if name in self.down else 200)

    def url(self, name: str) -> str:
        return self.server.url_for(f"/{name}")


class Receiver:
    """A notification receiver: records each JSON body; may answer with a status, or wait."""

    def __init__(self, server: HTTPServer | None = None):
        self.bodies: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.server = server or HTTPServer(host="127.0.0.1", threaded=True)
        self.server.expect_request("/hook").respond_with_handler(self._answer)
        self._lock = threading.Lock()

    def _answer(self, request):
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.bodies.append(json.loads(request.get_data()))
        return Response("{}", self.status)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.port}/hook"

    def titles(self) -> list[str]:
        return [b["title"] for b in self.bodies]


@pytest.fixture
def targets(http_servers):
    with http_servers.borrow() as server:
        yield Targets(server)


@pytest.fixture
def receiver(http_servers):
    with http_servers.borrow() as server:
        yield Receiver(server)


class Webhook:
    def __init__(self, status=200, server: HTTPServer | None = None):
        self.calls: list[dict] = []
        self.status = status
        self.server = server or HTTPServer(host="127.0.0.1", threaded=True)
        self.server.expect_request("/restart").respond_with_handler(self._answer)

    def _answer(self, request):
        self.calls.append(
            {"method": request.method, "headers": dict(request.headers), "body": request.get_data()}
        )
        return Response("", self.status)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.port}/restart"


@pytest.fixture
def webhook(http_servers):
    with http_servers.borrow() as server:
        yield Webhook(server=server)


@pytest.fixture
def automation(make_token):
    return ApiClient(make_token(["automation:read", "automation:write"]).secret)


@pytest.fixture
def acting_automation(make_token):
    """A token for rules whose actions change services: a rule's author holds the scope of
    each change its actions make (registry:write moves a lifecycle, checklists:write starts
    a checklist), as for the same change made directly."""
    scopes = ["automation:read", "automation:write", "registry:write", "checklists:write"]
    return ApiClient(make_token(scopes).secret)


@pytest.fixture(autouse=True)
def _automation_settings(settings):
    settings.PORTAL_BASE_URL = "https://portal.example"
    settings.AUTOMATION_GROUP_SECONDS = 30
    settings.AUTOMATION_SEND_TIMEOUT = 2.0
    settings.AUTOMATION_RETRY_SECONDS = 30
    settings.AUTOMATION_MAX_ATTEMPTS = 3
    settings.ENABLE_HEALTH_AUTOMATION = True
    return settings


class Estate:
    """Services with one HTTP check each, hard dependencies between them, and helpers that
    move them through the real engine and the automation."""

    def __init__(self, targets: Targets):
        self.targets = targets
        self.services = {}
        self.checks = {}

    def add(self, name: str, team: str = "core", depends_on=()):
        service = ServiceFactory(name=name, team=Team.objects.get_or_create(name=team)[0])
        self.services[name] = service
        self.checks[name] = make_check(
            service=service, name="http", target=self.targets.url(name), timeout=2
        )
        for upstream in depends_on:
            Dependency.objects.create(
                service=service, depends_on=self.services[upstream], kind=DependencyKind.HARD
            )
        return service

    def probe(self, *names: str) -> None:
        """Run the named services' checks now, in this order, through the engine."""
        for name in names:
            checks.run_now(self.checks[name], ACTOR)

    def down(self, *names: str) -> None:
        self.targets.down.update(names)
        self.probe(*names)

    def up(self, *names: str) -> None:
        self.targets.down.difference_update(names)
        self.probe(*names)


@pytest.fixture
def estate(targets, db):
    return Estate(targets)


@pytest.fixture
def db_estate(estate):
    """One service, db, healthy, its first change processed (modules may define their own)."""
    estate.add("db")
    estate.up("db")
    process()
    return estate


def channel(name: str, url: str, teams=(), events=("down", "degraded", "recovered")):
    return put_channel(name, ChannelIn(url=url, teams=list(teams), events=list(events)), ACTOR)[0]


def process():
    return alerts.process_status_changes()


def send_later(seconds: float = 60):
    """Send what is due ``seconds`` from now (past the grouping wait)."""
    return notify.send_due(now=timezone.now() + timedelta(seconds=seconds))

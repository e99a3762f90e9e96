"""Lifecycle follows the dependencies (docs/decisions.md), for every pair of statuses, through
the API: starting or running needs every hard dependency up (running or degraded); stopping
needs no hard dependent up or starting; otherwise a 409 naming them. A soft edge never
blocks. Each case runs in a savepoint rolled back after it, so all of them see one estate."""

import itertools

import pytest
from django.db import transaction

from services.lifecycle import ALLOWED
from services.models import Dependency, DependencyKind, LifecycleStatus, Service
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
STATUSES = [str(s) for s in LifecycleStatus]
UP = {"running", "degraded"}
UP_OR_STARTING = {"starting", "running", "degraded"}


@pytest.fixture
def client(make_token):
    return ApiClient(make_token(["registry:read", "registry:write"]).secret)


@pytest.fixture
def pair():
    """app depends on db, hard; app also on cache, softly (stopped: never in the way)."""
    team = TeamFactory(name="core")
    app, db, cache = (ServiceFactory(name=n, team=team) for n in ("app", "db", "cache"))
    Dependency.objects.create(service=app, depends_on=db, kind=DependencyKind.HARD)
    Dependency.objects.create(service=app, depends_on=cache, kind=DependencyKind.SOFT)
    Service.objects.filter(name="cache").update(lifecycle_status="stopped")
    return app, db


def moves(to_states: set[str]):
    """Every (from, to) the lifecycle allows with ``to`` among ``to_states``."""
    return [(f, t) for f in STATUSES for t in ALLOWED[f] if t in to_states]


def each_case(cases, check) -> None:
    wrong = []
    for case in cases:
        with transaction.atomic():
            problem = check(*case)
            transaction.set_rollback(True)
        if problem:
            wrong.append(f"{case}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_a_service_starts_only_while_every_hard_dependency_is_up(client, pair):
    def check(db_status, current, to):
        Service.objects.filter(name="db").update(lifecycle_status=db_status)
        Service.objects.filter(name="app").update(lifecycle_status=current)
        answer = client.call("POST", "/api/services/app/transitions", {"to": to})
        if db_status in UP:
            return None if answer.status_code == 200 else f"refused: {answer.content[:200]!r}"
        error = answer.json().get("error", {})
        if answer.status_code != 409 or error.get("code") != "dependencies_not_running":
            return f"not refused: {answer.status_code} {answer.content[:200]!r}"
        if error["blocking"] != [{"service": "db", "lifecycle_status": db_status}]:
            return f"blocking {error['blocking']}"
        return None

    cases = [(d, f, t) for d in STATUSES for f, t in moves({"starting", "running"})]
    assert len(cases) > 20
    each_case(cases, check)


def test_a_service_stops_only_while_no_hard_dependent_is_up_or_starting(client, pair):
    def check(app_status, current, to):
        Service.objects.filter(name="app").update(lifecycle_status=app_status)
        Service.objects.filter(name="db").update(lifecycle_status=current)
        answer = client.call("POST", "/api/services/db/transitions", {"to": to})
        if app_status not in UP_OR_STARTING:
            return None if answer.status_code == 200 else f"refused: {answer.content[:200]!r}"
        error = answer.json().get("error", {})
        if answer.status_code != 409 or error.get("code") != "has_running_dependents":
            return f"not refused: {answer.status_code} {answer.content[:200]!r}"
        if error["blocking"] != [{"service": "app", "lifecycle_status": app_status}]:
            return f"blocking {error['blocking']}"
        return None

    cases = [(a, f, t) for a, (f, t) in itertools.product(STATUSES, moves({"stopping", "stopped"}))]
    assert len(cases) > 20
    each_case(cases, check)

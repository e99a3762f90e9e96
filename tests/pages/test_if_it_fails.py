""" "If it fails" on the service page agrees with the engine (issue 22, item 6): for random
dependency graphs (hard and soft), random check sets and criticality on the dependents (some
waiting for their first result, some services stopped), the status the page says each
dependent would have if the service failed is the status the engine gives it when the
service really fails -- and the status it says each would have otherwise is the one the
engine gives it when the service recovers."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck as Hypothesis
from hypothesis import given, settings
from hypothesis import strategies as st

from healthchecks.engine import recording, service_health
from healthchecks.models import CheckState, ServiceHealth
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from pages.service_page import if_it_fails
from services.graph import DependencyGraph
from services.models import Dependency, LifecycleStatus, Service
from tests.factories import ServiceFactory, make_check

pytestmark = pytest.mark.django_db

H, D, U, K = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.UNKNOWN
WAITING = "waiting"

CHECK = st.tuples(st.sampled_from([H, D, U, K, WAITING]), st.booleans())
SERVICE = st.tuples(st.lists(CHECK, max_size=3), st.booleans())  # (checks, stopped)


@st.composite
def estates(draw):
    """Services 1..n, each depending on some of those before it (acyclic), hard or soft;
    service 0 is the one that fails, with one critical check of its own."""
    n = draw(st.integers(2, 6))
    services = [draw(SERVICE) for _ in range(n)]
    edges = []
    for i in range(1, n + 1):
        for j in draw(st.sets(st.integers(0, i - 1), max_size=3)):
            edges.append((i, j, draw(st.sampled_from(["hard", "soft"]))))
    return services, edges


def record(check, status) -> None:
    at = timezone.now()
    recording.record([recording.Result(check.pk, at, at, ProbeOutcome(status))])


def build(services, edges):
    root = ServiceFactory(name="s0")
    probe = make_check(root, name="probe", is_critical=True)
    record(probe, H)
    made = {0: root}
    long_ago = timezone.now() - timedelta(seconds=5)
    for i, (check_set, stopped) in enumerate(services, start=1):
        made[i] = ServiceFactory(name=f"s{i}")
        if stopped:
            Service.objects.filter(pk=made[i].pk).update(lifecycle_status=LifecycleStatus.STOPPED)
        for c, (status, critical) in enumerate(check_set):
            check = make_check(made[i], name=f"c{c}", is_critical=critical)
            if status != WAITING:
                CheckState.objects.filter(health_check=check).update(
                    status=status, last_result_at=long_ago
                )
    for i, j, kind in edges:
        Dependency.objects.create(service=made[i], depends_on=made[j], kind=kind)
    # The engine settles the estate as it stands (its status rows consistent with it).
    service_health.recompute({s.id for s in made.values()})
    return probe


def engine_statuses() -> dict[str, str]:
    return {
        name: Status(status).label
        for name, status in ServiceHealth.objects.values_list("service__name", "status")
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[Hypothesis.function_scoped_fixture, Hypothesis.too_slow],
)
@given(estate=estates())
def test_the_pages_impact_is_what_the_engine_does_when_the_service_fails(estate):
    with transaction.atomic():
        probe = build(*estate)
        said = if_it_fails("s0", DependencyGraph.load())
        record(probe, U)  # s0 really fails, through the engine
        failed = engine_statuses()
        record(probe, H)  # and recovers
        recovered = engine_statuses()
        for item in said:
            assert item["status"] == failed[item["service"]], item
            assert item["otherwise"] == recovered[item["service"]], item
            assert item["changes"] == (failed[item["service"]] != recovered[item["service"]])
        transaction.set_rollback(True)


def test_a_hard_dependent_is_said_degraded_and_one_past_it_unchanged(client, django_user_model):
    """db <- api (hard) <- web (hard), db <- jobs (soft): if db fails the engine degrades
    api, and leaves web (api is only degraded) and jobs (soft) as they are -- the page says
    just that (it said "down" for api and web)."""
    db, api, web, jobs = (ServiceFactory(name=n) for n in ("db", "api", "web", "jobs"))
    for service in (db, api, web, jobs):
        record(make_check(service, name="http"), H)
    Dependency.objects.create(service=api, depends_on=db, kind="hard")
    Dependency.objects.create(service=web, depends_on=api, kind="hard")
    Dependency.objects.create(service=jobs, depends_on=db, kind="soft")
    client.force_login(django_user_model.objects.create_user("ann"))
    page = client.get("/services/db/").content.decode()
    part = page[page.index('id="if-it-fails"') :]
    assert '<li data-service="api"><a href="/services/api/">api</a>: degraded</li>' in part
    assert "web</a>: no change (healthy)" in part
    assert "jobs</a>: no change (healthy)" in part

"""A service's page through Django's full stack: its status and why, the runbook when it is
not healthy, neighbours with impact, history charts, availability with the SLO view, and the
run-checks button for operators only."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.models import HealthCheck
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from services import configs
from services.models import Dependency, DependencyKind, Service
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def record(check, status, errors=()):
    now = timezone.now()
    recording.record(
        [recording.Result(check.pk, now, now, ProbeOutcome(status, errors=list(errors)))]
    )


@pytest.fixture
def estate():
    db = ServiceFactory(name="db", runbook_url="https://runbooks.example/db")
    api = ServiceFactory(name="api")
    Dependency.objects.create(service=api, depends_on=db, kind=DependencyKind.HARD)
    record(make_check(db, name="tcp", is_critical=True), Status.UNHEALTHY, ["connection refused"])
    record(make_check(api, name="http", is_critical=True), Status.HEALTHY)
    return db, api


def test_an_unhealthy_service_explains_itself_with_a_runbook(client, bob, estate):
    client.force_login(bob)
    page = client.get("/services/db/").content.decode()
    assert "critical check failing: tcp" in page
    assert "connection refused" in page
    assert "Service recovery" in page and "Check service status and errors" in page
    assert "https://runbooks.example/db" in page
    assert "runbook (linked above)" in page
    assert 'href="/services/api/"' in page  # needed by api, which goes down with it
    assert '/services/api/">api</a>: down' in page
    assert '<svg class="chart timeline"' in page and '<svg class="chart bars"' in page
    assert "run-checks" not in page  # a viewer has no button


def test_a_healthy_service_has_no_runbook_and_its_degraded_dependent_has_one(client, bob, estate):
    record(make_check(ServiceFactory(name="web"), name="http", is_critical=True), Status.HEALTHY)
    client.force_login(bob)
    assert 'id="runbook"' not in client.get("/services/web/").content.decode()
    page = client.get("/services/api/").content.decode()
    assert "the service is degraded: hard dependency unhealthy: db" in page
    assert "has no runbook link (set runbook_url)" in page  # no "linked above" to nothing
    assert "Review service dependencies" in page and "db (hard): unhealthy" in page


def test_ranges_and_the_slo_view_are_read_from_the_query(client, bob, estate):
    client.force_login(bob)
    page = client.get("/services/db/?range=7d&exclude=maintenance,upstream").content.decode()
    assert 'aria-current="true">7d<' in page
    assert 'href="?range=30d&amp;exclude=maintenance,upstream"' in page  # ranges keep the view
    assert "Leaving out: maintenance, upstream" in page
    odd = client.get("/services/db/?range=forever&exclude=weekends", follow=True)
    assert odd.status_code == 200 and "Ignored exclude" in odd.content.decode()


def test_an_operator_runs_the_checks_and_a_viewer_may_not(client, alice, bob, estate):
    Service.objects.get(name="db").team.members.add(alice)
    client.force_login(bob)
    assert client.post("/services/db/run-checks").status_code == 403
    client.force_login(alice)
    page = client.get("/services/db/").content.decode()
    assert "run-checks" in page and "Start a checklist" in page
    answer = client.post("/services/db/run-checks", follow=True)
    assert "Ran tcp unhealthy." in answer.content.decode()  # nothing listens on its target


def test_an_unknown_service_is_a_404(client, bob):
    client.force_login(bob)
    assert client.get("/services/ghost/").status_code == 404


def test_the_page_keeps_its_query_count_with_history(
    client, bob, estate, django_assert_max_num_queries
):
    client.force_login(bob)
    check = HealthCheck.objects.get(name="tcp")
    for minutes in range(0, 120, 2):
        at = timezone.now() - timedelta(minutes=minutes)
        recording.record([recording.Result(check.pk, at, at, ProbeOutcome(Status.HEALTHY))])
    with django_assert_max_num_queries(60):
        assert client.get("/services/db/").status_code == 200


def test_a_versions_diff_link_compares_that_version_with_the_one_before(client, bob):
    """The link sent ?from=&to=, which the API does not read: every link showed the last
    change, whichever version it sat beside."""
    ServiceFactory(name="shop")
    for base, timeout in enumerate((1, 2, 3)):
        configs.publish("shop", {"timeout": timeout}, base, system_actor("t"))
    client.force_login(bob)
    page = client.get("/services/shop/").content.decode()
    link = next(u for u in re.findall(r'href="([^"]+)"', page) if "to_version=2" in u)
    diff = client.get(link.replace("&amp;", "&")).json()
    [change] = diff["changed"]
    assert (change["path"], change["old"], change["new"]) == ("timeout", 1, 2)

"""A service's page through Django's full stack: its status and why, the runbook when it is
not healthy (worded for the reader's role), neighbours with impact, history charts,
availability with the SLO view, and the run-checks button for operators only."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
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
    assert 'href="/services/api/"' in page  # needed by api, which it degrades
    # As the engine has it (issue 22): api is degraded by db, not down with it.
    assert '/services/api/">api</a>: degraded' in page
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


@pytest.fixture
def troubled(estate):
    """db needs every procedure: unhealthy, a check that never ran (health check recovery),
    a configuration its current schema refuses (configuration recovery); its team has a
    contact and one operator, alice."""
    db, _ = estate
    db.team.contact = "#db-oncall"
    db.team.save()
    make_check(db, name="never-ran")
    configs.publish("db", {"timeout": "soon"}, 0, system_actor("t"))
    schema = {"type": "object", "properties": {"timeout": {"type": "integer"}}}
    configs.put_schema("db", schema, system_actor("t"))
    return db


def runbook_of(client, name: str = "db") -> str:
    page = client.get(f"/services/{name}/").content.decode()
    start = page.index('id="runbook"')
    return page[start : page.index("</section>", start)]


RUN_CHECKS = "\u201cRun checks now\u201d"


def test_the_runbook_tells_a_viewer_whom_to_ask_not_to_press_a_button_they_lack(
    client, alice, bob, troubled
):
    """Issue 28, item 5: a viewer read "✘ look here" -> "Use “Run checks now” above", a button
    only operators have. Now every step that acts names who may: the owning team's
    operators and its contact."""
    troubled.team.members.add(alice, bob)  # bob is of the team, but a viewer
    client.force_login(bob)
    runbook = runbook_of(client)
    for title in ("Service recovery", "Configuration recovery", "Health check recovery"):
        assert title in runbook
    assert (
        RUN_CHECKS not in runbook
        and "Run checks now" not in client.get("/services/db/").content.decode()
    )
    ask = f"ask an operator of the team {troubled.team.name} (alice; contact #db-oncall)"
    assert f"to run them now, {ask}." in runbook  # verify / test the check manually
    assert runbook.count(f"to run them now, {ask}") == 2
    assert f"rolling back is for the service&#x27;s operators: {ask}, and tell them" in runbook
    assert f"Changing a check is for the service&#x27;s operators: {ask}." in runbook
    assert f"if it is not yours to restart, {ask};" in runbook
    assert "PUT .../checks/&lt;check&gt;" not in runbook  # the operators' way, not the viewer's
    assert "bob" not in runbook  # a viewer of the team is no one to ask


def test_an_operator_of_another_team_is_told_whom_to_ask_too(client, troubled):
    carol = User.objects.create_user("carol", password="pw")
    carol.groups.add(Group.objects.get(name="operator"))
    troubled.team.members.add(User.objects.create_user("dave", password="pw"))  # a viewer
    client.force_login(carol)
    runbook = runbook_of(client)
    assert RUN_CHECKS not in runbook
    # Nobody of db's team may act on it: the portal's admins are named instead.
    User.objects.create_user("root", password="pw", is_superuser=True, is_staff=True)
    assert (
        f"the team {troubled.team.name} has no operator here; contact #db-oncall: ask a portal "
        "admin (root)" in runbook_of(client)
    )


def test_an_operator_of_the_owning_team_is_pointed_to_the_button(client, alice, troubled):
    troubled.team.members.add(alice)
    client.force_login(alice)
    page = client.get("/services/db/").content.decode()
    runbook = runbook_of(client)
    assert ">Run checks now</button>" in page
    assert f"Use {RUN_CHECKS} above; the results replace the ones listed." in runbook
    assert f"Use {RUN_CHECKS} above." in runbook  # testing a check by hand
    assert "Publish a new version (API, admin); rollback restores an earlier one." in runbook
    assert "In the admin or PUT .../checks/&lt;check&gt;." in runbook
    assert "ask an operator" not in runbook and "not yours to restart" not in runbook


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

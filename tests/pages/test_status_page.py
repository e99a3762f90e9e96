"""The status page: login-only unless STATUS_PAGE_PUBLIC, chosen services by team or tag,
their status, 90 daily bars and the incidents going on -- and nothing more (no reasons
beyond an incident's cause, no targets)."""

import pytest
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from tests.factories import ServiceFactory, TeamFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def estate():
    core, edge = TeamFactory(name="core"), TeamFactory(name="edge")
    down = make_check(ServiceFactory(name="db", team=core), target="http://10.1.2.3:5432/")
    make_check(ServiceFactory(name="web", team=edge))
    now = timezone.now()
    outcome = ProbeOutcome(Status.UNHEALTHY, errors=["refused by 10.1.2.3"])
    recording.record([recording.Result(down.pk, now, now, outcome)])


def test_it_is_for_logged_in_people_unless_made_public(client, estate, settings):
    assert client.get("/status/").status_code == 302
    settings.STATUS_PAGE_PUBLIC = True
    page = client.get("/status/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-service="db"' in html and 'data-service="web"' in html
    assert "Ongoing incidents" in html and "critical check failing: check-" in html
    assert "10.1.2.3" not in html  # no targets, no probe errors
    assert html.count('<svg class="chart bars"') == 2


def test_a_team_or_a_tag_chooses_the_services(client, bob, estate):
    client.force_login(bob)
    core = client.get("/status/?team=core").content.decode()
    assert 'data-service="db"' in core and 'data-service="web"' not in core
    assert "Team core" in core
    assert "No service to show." in client.get("/status/?tag=nothing").content.decode()

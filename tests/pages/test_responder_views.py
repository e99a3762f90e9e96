"""The pages a responder uses, through Django's stack (issue 22, items 6 and 7): the service
page's default range is the last hour; a stopped service's page says it is not watched; a check
with no result yet reads "waiting for first result"; every moment is written as a <time> in
UTC for the browser to show in the viewer's zone; the overview's cells name their column for
the phone's card layout."""

import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from healthchecks import checks
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.schemas import CheckFieldsIn
from healthchecks.status import Status
from pages.templatetags.portal import moment
from portal.auth import system_actor
from services import lifecycle
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
ACTOR = system_actor("tests")


def record(check, status):
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(status))])


def test_the_service_pages_default_range_is_the_last_hour(client, bob):
    record(make_check(ServiceFactory(name="db"), name="tcp"), Status.HEALTHY)
    client.force_login(bob)
    page = client.get("/services/db/").content.decode()
    assert 'aria-current="true">1h<' in page
    assert "Status, last 1h" in page
    assert 'aria-current="true">1h<' in client.get("/services/db/?range=never").content.decode()


def test_a_stopped_services_page_says_it_is_not_watched(client, bob):
    record(make_check(ServiceFactory(name="db"), name="tcp"), Status.UNHEALTHY)
    for step in ("running", "stopping", "stopped"):
        lifecycle.transition("db", step, "tests", ACTOR)
    client.force_login(bob)
    page = client.get("/services/db/").content.decode()
    assert 'id="not-watched"' in page
    assert "db is stopped: its checks are not run and it opens no alerts" in page
    assert "lifecycle stopped: not probed, no alerts" in page


def test_a_check_never_run_reads_waiting_for_first_result(client, bob):
    ServiceFactory(name="db")
    checks.put_one("db", "tcp", CheckFieldsIn(kind="tcp", target="127.0.0.1:9"), ACTOR)
    client.force_login(bob)
    page = client.get("/services/db/").content.decode()
    assert '<span class="reason waiting">waiting for first result</span>' in page
    assert "— waiting for first result: tcp" in page  # the service's reason
    overview = client.get("/").content.decode()
    assert '<small class="reason">waiting for first result: tcp</small>' in overview


def test_a_moment_is_a_time_element_in_utc_for_the_browser_to_convert():
    at = datetime(2026, 12, 8, 9, 30, 5, tzinfo=UTC)
    assert moment(at) == (
        '<time datetime="2026-12-08T09:30:05Z" data-local="seconds">2026-12-08 09:30:05 UTC</time>'
    )
    assert moment("2026-12-08T09:30:05Z", "clock") == (
        '<time datetime="2026-12-08T09:30:05Z" data-local="clock">09:30 UTC</time>'
    )
    assert moment(None) == "" and moment("not a time") == "not a time"


def test_the_overviews_cells_name_their_columns_and_times_are_time_elements(client, bob):
    check = make_check(ServiceFactory(name="db"), name="tcp")
    record(check, Status.UNHEALTHY)
    client.force_login(bob)
    page = client.get("/").content.decode()
    row = re.search(r'<tr data-service="db">.*?</tr>', page, re.S).group(0)
    columns = re.findall(r'<td class="col-([a-z0-9]+)">', row)
    assert columns[:3] == ["service", "team", "health"] and "last" in columns
    assert len(columns) == 12
    assert re.search(r'<td class="col-last"><time datetime="[^"]+Z" data-local="time">', row)
    assert '<table class="services overview">' in page
    assert re.search(r'updated <time datetime="[^"]+" data-local="time">', page)
    wall = client.get("/wall/").content.decode()
    assert re.search(r'since <time datetime="[^"]+" data-local="clock">\d\d:\d\d UTC</time>', wall)

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from tests.factories import DependencyFactory, ServiceFactory, TeamFactory, make_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, bob):
    client.force_login(bob)
    return client


def test_the_overview_needs_a_login(client):
    res = client.get("/")
    assert res.status_code == 302 and res["Location"].startswith("/accounts/login/")


def test_it_lists_services_with_team_and_status(logged_in):
    link = DependencyFactory(service__name="web", depends_on__name="db", kind="soft")
    res = logged_in.get("/")
    html = res.content.decode()
    assert res.status_code == 200
    assert 'data-service="web"' in html and 'data-service="db"' in html
    assert link.service.team.name in html
    assert "lifecycle-registered" in html
    assert "dep-soft" in html
    assert "<html" in html


def test_it_shows_each_service_health_and_the_overall_status(logged_in):
    down = make_check(ServiceFactory(name="ledger", is_critical=True))
    ServiceFactory(name="quiet")
    now = timezone.now()
    recording.record(
        [recording.Result(down.pk, now, now, ProbeOutcome(Status.UNHEALTHY, errors=["refused"]))]
    )
    html = logged_in.get("/").content.decode()
    assert 'class="badge health health-unhealthy" title="critical check failing' in html
    assert "health-unknown" in html
    assert 'Overall: <span class="badge health health-unhealthy"' in html
    assert 'hx-trigger="every 15s, refresh"' in html


def test_an_htmx_request_gets_only_the_table(logged_in):
    TeamFactory(name="edge")
    ServiceFactory(name="proxy", team__name="edge")
    ServiceFactory(name="db")
    res = logged_in.get("/?team=edge", headers={"HX-Request": "true"})
    html = res.content.decode()
    assert html.lstrip().startswith('<section id="service-table"')
    assert 'data-service="proxy"' in html and 'data-service="db"' not in html
    assert "<html" not in html


def test_a_history_restore_gets_the_whole_page_and_caches_tell_them_apart(logged_in):
    ServiceFactory(name="db")
    res = logged_in.get(
        "/?q=d", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in res.content.decode()
    assert "HX-Request" in res["Vary"]


def test_a_bad_filter_is_reported_not_fatal(logged_in):
    ServiceFactory(name="db")
    res = logged_in.get("/?status=sleeping&q=d")
    assert res.status_code == 200
    html = res.content.decode()
    assert "Ignored filter status" in html and 'data-service="db"' in html


def test_the_overview_costs_a_fixed_number_of_queries(logged_in):
    team = TeamFactory(name="t")

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert logged_in.get("/").status_code == 200
        return len(ctx)

    for i in range(15):
        DependencyFactory(service__name=f"s{i}", service__team=team, depends_on__team=team)
    few = queries_for_page()
    for i in range(15, 60):
        DependencyFactory(service__name=f"s{i}", service__team=team, depends_on__team=team)
    assert queries_for_page() == few <= 20


def test_login_and_logout(client, bob):
    res = client.post("/accounts/login/", {"username": "bob", "password": "pw"})
    assert res.status_code == 302 and res["Location"] == "/"
    assert client.get("/").status_code == 200
    res = client.post("/accounts/logout/")
    assert res.status_code == 302
    assert client.get("/").status_code == 302


def test_the_liveness_probe_is_open_and_cheap(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        res = client.get("/health/")
    assert res.status_code == 200 and res.json() == {"status": "pass"}


def test_pages_send_security_headers(logged_in):
    res = logged_in.get("/")
    assert "script-src 'self' 'nonce-" in res["Content-Security-Policy"]
    assert res["X-Frame-Options"] == "DENY"
    assert res["X-Content-Type-Options"] == "nosniff"


def test_the_drift_page_lists_drifting_services(logged_in):
    from portal.auth import system_actor
    from services import configs, deployments

    actor = system_actor("test")
    ServiceFactory(name="shop")
    configs.publish("shop", {"a": 1}, 0, actor)
    deployments.report(
        "shop",
        version="1.0",
        status="succeeded",
        config_version=1,
        config_hash="",
        link="",
        actor=actor,
    )
    assert "No service drifts." in logged_in.get("/config/drift").content.decode()
    configs.publish("shop", {"a": 2}, 1, actor)
    html = logged_in.get("/config/drift").content.decode()
    assert 'data-service="shop"' in html and "v1" in html and "v2" in html


def test_worst_first_with_a_health_filter_a_strip_and_a_wall_of_problems(logged_in):
    fine = make_check(ServiceFactory(name="aaa-fine"), is_critical=True)
    down = make_check(ServiceFactory(name="zzz-down"), is_critical=True)
    ServiceFactory(name="mmm-unknown")
    now = timezone.now()
    recording.record(
        [
            recording.Result(fine.pk, now, now, ProbeOutcome(Status.HEALTHY)),
            recording.Result(down.pk, now, now, ProbeOutcome(Status.UNHEALTHY, errors=["x"])),
        ]
    )
    html = logged_in.get("/").content.decode()
    order = [html.index(f'data-service="{n}"') for n in ("zzz-down", "mmm-unknown", "aaa-fine")]
    assert order == sorted(order)  # worst first
    by_name = logged_in.get("/?sort=name").content.decode()
    assert by_name.index('data-service="aaa-fine"') < by_name.index('data-service="zzz-down"')
    only_down = logged_in.get("/?health=unhealthy").content.decode()
    assert 'data-service="zzz-down"' in only_down and 'data-service="aaa-fine"' not in only_down
    assert "Ignored filter health" in logged_in.get("/?health=sad").content.decode()
    # The last hour of the strip shows the outage, in words too.
    assert '<i class="x">' in html
    assert "zzz-down, last 24 h (UTC): unknown" in html and "unhealthy" in html
    wall = logged_in.get("/wall/").content.decode()
    assert "zzz-down" in wall and "mmm-unknown" in wall and "aaa-fine" not in wall


def test_a_status_strip_tells_its_runs_in_words():
    from datetime import UTC, datetime

    from pages import charts

    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    ok, down = Status.HEALTHY, Status.UNHEALTHY
    strip = charts.status_strip("<api>", [ok] * 20 + [down] * 3 + [ok], start)
    assert 'title="&lt;api&gt;, last 24 h (UTC): healthy 08:00-04:00, ' in strip
    assert "unhealthy 04:00-07:00, healthy 07:00-08:00" in strip
    assert strip.count('<i class="x">') == 3


def test_the_overview_pages_through_the_estate_keeping_its_filters(logged_in, settings):
    from pages import views

    team = TeamFactory(name="big")
    for i in range(views.PAGE_SIZE + 5):
        ServiceFactory(name=f"s{i:03d}", team=team)
    first = logged_in.get("/?team=big&sort=name").content.decode()
    assert first.count("<tr data-service=") == views.PAGE_SIZE
    assert f"1\u2013{views.PAGE_SIZE} shown" in first
    assert 'href="?team=big&amp;sort=name&amp;page=2"' in first and 'rel="prev"' not in first
    second = logged_in.get("/?team=big&sort=name&page=2").content.decode()
    assert second.count("<tr data-service=") == 5 and 'data-service="s104"' in second
    assert 'rel="next"' not in second and 'href="?team=big&amp;sort=name&amp;page=1"' in second
    # A page that does not exist shows the first, and says why.
    for bad in ("3", "0", "x"):
        html = logged_in.get(f"/?team=big&sort=name&page={bad}").content.decode()
        assert "Ignored filter page: not a page between 1 and 2" in html
        assert 'data-service="s000"' in html


def test_hostile_text_in_a_row_is_shown_as_text(logged_in):
    service = ServiceFactory(
        name="web",
        display_name='<script>alert("x")</script>',
        deployed_version="<b>1</b>",
        team__name='<img src=x onerror="alert(1)">',
    )
    check = make_check(service, is_critical=True)
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(Status.UNHEALTHY))])
    html = logged_in.get("/").content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    assert "&lt;b&gt;1&lt;/b&gt;" in html
    row = html[html.index('<tr data-service="web">') :]
    row = row[: row.index("</tr>")]
    assert 'href="/services/web/"' in row and "health-unhealthy" in row and "critical" in row


def test_a_response_time_series_of_one_point_is_drawn_as_a_dot():
    """A check an hour old has one bucket in the 24-hour chart: a line of one point shows
    nothing, so it is a dot."""
    from datetime import UTC, datetime, timedelta

    from pages import charts

    end = datetime(2026, 12, 1, 12, tzinfo=UTC)
    start = end - timedelta(hours=24)
    one = charts.response_times({"http": [(end - timedelta(minutes=30), 120.0)]}, start, end)
    assert '<circle class="dot line-0"' in one and "<polyline" not in one
    two = charts.response_times(
        {"http": [(end - timedelta(hours=2), 80.0), (end - timedelta(hours=1), 120.0)]}, start, end
    )
    assert "<polyline" in two and "<circle" not in two


def test_a_pages_aggregates_are_shared_and_a_status_change_remakes_them(logged_in, settings):
    """Refreshes within AGGREGATES_SECONDS reuse the strips, uptimes and latency (fewer
    queries); a status change anywhere is shown at once; without Redis nothing breaks."""
    check = make_check(ServiceFactory(name="web"), is_critical=True)

    def fragment() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as ctx:
            html = logged_in.get("/", HTTP_HX_REQUEST="true").content.decode()
        return html, len(ctx)

    first, cold = fragment()
    again, warm = fragment()
    assert warm < cold and again.count('<i class="u">') == first.count('<i class="u">')
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(Status.UNHEALTHY))])
    changed, _ = fragment()
    assert '<i class="x">' in changed  # the outage in the strip at once, not 20 s later
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert '<i class="x">' in logged_in.get("/", HTTP_HX_REQUEST="true").content.decode()


def test_the_service_page_marks_each_deployment_on_its_charts_with_the_version(logged_in):
    """Issue 21, item 5: a regression is seen beside the release that brought it -- a mark
    on the status timeline and the response-time chart, titled with the version and its
    verdict, the version written on the chart."""
    from portal.auth import system_actor
    from services import deployments

    web = ServiceFactory(name="web")
    make_check(web, name="http")
    deployments.report(
        "web", version="v<7>", status="succeeded", config_version=None, config_hash="",
        link="", actor=system_actor("ci"),
    )  # fmt: skip
    page = logged_in.get("/services/web/").content.decode()
    assert page.count('<line class="release release-pending"') == 2  # both charts
    assert "<title>deployment v&lt;7&gt; at " in page
    assert ", verification pending</title>" in page
    assert '<text class="axis release-label"' in page and ">v&lt;7&gt;</text>" in page


def test_a_deployment_outside_the_charts_range_is_not_marked():
    from datetime import UTC, datetime, timedelta

    from pages import charts

    end = datetime(2026, 12, 1, 12, tzinfo=UTC)
    start = end - timedelta(hours=24)
    releases = [(start - timedelta(minutes=1), "old", "passed"), (end, "new", "failed")]
    svg = charts.status_timeline([], start, end, releases)
    assert "deployment old" not in svg
    assert '<line class="release release-failed"' in svg and "deployment new" in svg

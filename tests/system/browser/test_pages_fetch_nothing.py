"""The README ("Pages"): charts are SVG drawn on the server, nothing is fetched from the
network, and the CSP stays strict. In Chromium, every page a logged-in person opens -- with
its charts drawn from real results -- makes requests to the portal alone, and the policy it is
served with allows scripts and styles from the portal with its nonce, nothing inline."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from checklists import routines
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.reads import history
from healthchecks.status import Status
from services.models import Service
from tests.factories import make_check
from tests.system.browser.support import browser_test, log_in

pytestmark = browser_test
PAGES = ["/", "/wall/", "/services/auth/", "/map/", "/status/", "/config/drift", "/maintenance/"]
CHARTED = {"/services/auth/": 3, "/map/": 1, "/status/": 1}  # SVG charts drawn on the server


@pytest.fixture
def charted(registry_data):
    """Two hours of results for auth, rolled up: every chart has something to draw."""
    check = make_check(Service.objects.get(name="auth"), name="http", is_critical=True)
    now = timezone.now()
    rows = [
        recording.Result(check.pk, at, at, ProbeOutcome(Status.HEALTHY, response_ms=40))
        for at in (now - timedelta(minutes=m) for m in range(120, 0, -1))
    ]
    recording.record(rows)
    history.rollup_hours(now - timedelta(hours=3), now)
    routines.install(apps)


def test_every_page_fetches_from_the_portal_alone_under_a_strict_policy(
    page, live_server, user, charted
):
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    log_in(page, "carol")
    for path in PAGES:
        answer = page.goto(path)
        assert answer.status == 200, path
        policy = answer.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives["default-src"] == "'self'"
        for kind in ("script-src", "style-src"):
            assert directives[kind].startswith("'self' 'nonce-"), (path, kind)
            assert "unsafe" not in directives[kind], (path, kind)
        assert page.locator("svg").count() >= CHARTED.get(path, 0), path
    outside = [url for url in requested if not url.startswith(live_server.url)]
    assert requested and outside == [], outside

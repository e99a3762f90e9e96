"""portalctl deploy, wait and status, with health from the real engine probing local HTTP
servers (the ``prober`` fixture)."""

import json
import time

import pytest

from services.models import Deployment
from tests.portalctl.conftest import write

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def estate(httpserver, web_status: int = 200) -> str:
    """web (checked at /web) needs db (checked at /db) hard, and cache softly."""
    httpserver.expect_request("/web").respond_with_data("ok", status=web_status)
    httpserver.expect_request("/db").respond_with_data("ok")
    return f"""
teams: [{{name: shop}}]
services:
  - name: web
    team: shop
    is_critical: true
    dependencies: [db, {{service: cache, kind: soft}}]
    checks: [{{name: http, kind: http, interval: 10, target: "{httpserver.url_for("/web")}"}}]
  - name: db
    team: shop
    checks: [{{name: http, kind: http, interval: 10, target: "{httpserver.url_for("/db")}"}}]
  - name: cache
    team: shop
"""


@pytest.fixture
def applied(portalctl, tmp_path):
    def apply(text: str) -> None:
        result = portalctl("apply", write(tmp_path / "estate.yaml", text))
        assert result.exit_code == 0, result.output

    return apply


def test_deploy_reports_a_deployment(portalctl, applied, httpserver):
    applied(estate(httpserver))
    result = portalctl(
        "deploy", "web", "--version", "1.4.2", "--link", "https://ci.example.com/run/7"
    )
    assert result.exit_code == 0, result.output
    assert "reported web 1.4.2 succeeded" in result.stdout
    deployment = Deployment.objects.get(service__name="web")
    assert (deployment.version, deployment.link) == ("1.4.2", "https://ci.example.com/run/7")


def test_deploy_refuses_both_config_version_and_hash(portalctl, applied, httpserver):
    applied(estate(httpserver))
    result = portalctl(
        "deploy", "web", "--version", "1", "--config-version", 1, "--config-hash", "ab"
    )
    assert result.exit_code == 2
    assert not Deployment.objects.exists()


def test_deploy_of_an_unknown_config_version_exits_1(portalctl, applied, httpserver):
    applied(estate(httpserver))
    result = portalctl("deploy", "web", "--version", "1", "--config-version", 9)
    assert result.exit_code == 1
    assert "request id" in result.stderr


def test_wait_returns_once_the_probes_find_it_healthy(portalctl, applied, httpserver, prober):
    applied(estate(httpserver))
    prober()
    started = time.monotonic()
    result = portalctl("wait", "web", "--timeout", 30, "--interval", 0.2)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "usable: web"
    assert "web: healthy" in result.stdout
    assert time.monotonic() - started < 30


def test_wait_with_dependencies_waits_for_hard_ones_only(portalctl, applied, httpserver, prober):
    applied(estate(httpserver))
    prober()
    result = portalctl("wait", "web", "--dependencies", "--timeout", 30, "--interval", 0.2)
    assert result.exit_code == 0, result.output
    assert "usable: web, db" in result.stdout  # cache (soft, no checks) is not waited for


def test_wait_gives_up_naming_the_failing_check_and_its_error(
    portalctl, applied, httpserver, prober
):
    applied(estate(httpserver, web_status=500))
    prober()
    started = time.monotonic()
    result = portalctl("wait", "web", "--timeout", 3, "--interval", 0.2)
    assert result.exit_code == 1
    assert time.monotonic() - started < 10
    assert "gave up after 3s; not usable:" in result.stderr
    assert "web: unknown" in result.stderr or "web: unhealthy" in result.stderr
    assert "check http (unhealthy): HTTP 500" in result.stderr


def test_wait_json_says_why(portalctl, applied, httpserver):
    applied(estate(httpserver))  # nothing probes: no results yet
    result = portalctl("wait", "web", "db", "--timeout", 0, "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert body["services"]["db"]["status"] == "unknown"
    [failing] = body["services"]["db"]["failing_checks"]
    assert failing.startswith("http (unknown): no result since 20")


def test_wait_for_an_unknown_service_exits_1_at_once(portalctl, applied, httpserver):
    applied(estate(httpserver))
    result = portalctl("wait", "nosuch", "--timeout", 60)
    assert result.exit_code == 1
    assert "no service named 'nosuch'" in result.stderr


def test_status_shows_the_estate_and_one_service_as_tables(portalctl, applied, httpserver, prober):
    applied(estate(httpserver))
    prober()
    assert portalctl("wait", "web", "db", "--timeout", 30, "--interval", 0.2).exit_code == 0
    whole = portalctl("status")
    assert whole.exit_code == 0, whole.output
    lines = whole.stdout.splitlines()
    assert lines[1].split() == ["NAME", "STATUS", "CRITICAL", "SINCE", "RESPONSE", "MS", "REASON"]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["cache", "unknown"],
        ["db", "healthy"],
        ["web", "healthy"],
    ]
    one = portalctl("status", "web")
    assert one.stdout.startswith("web: healthy\n")
    assert "http  http  healthy" in one.stdout
    assert "db       hard  healthy" in one.stdout


def test_on_a_terminal_wait_keeps_one_live_line(live_server, applied, httpserver):
    """The Waiter itself, with a live line (what a terminal gets) and no probes running."""
    from portalctl.client import Portal
    from portalctl.waiting import Waiter

    applied(estate(httpserver))
    changes, live = [], []
    waiter = Waiter(
        Portal(live_server.url),
        ["web"],
        timeout=0.5,
        interval=0.1,
        report=changes.append,
        live=live.append,
    )
    assert waiter.run() is False
    # Once, not once per poll; the moment is the portal's, asked once.
    [change] = changes
    assert change.startswith("web: unknown (no result since 20") and change.endswith(": http)")
    assert list(waiter.since) == ["web"]
    assert len(live) >= 2 and all("0/1 usable; waiting for web unknown" in line for line in live)


def test_status_and_wait_refuse_a_token_that_is_not_valid(portalctl, applied, httpserver):
    """They read open endpoints, yet a pipeline's wrong token must show here (a stranger's
    trial: both exited 0), not at its next write."""
    for command in (["status"], ["wait", "checkout", "--timeout", "5"]):
        result = portalctl(*command, env={"PORTAL_TOKEN": "svp_wrong"})
        assert result.exit_code == 1, (command, result.output)
        assert "the bearer token is not valid" in result.output
    # Without a token they still work: the health reads are open.
    assert portalctl("status", env={"PORTAL_TOKEN": ""}).exit_code == 0


def test_the_gate_never_passes_a_release_on_a_result_from_before_it(
    portalctl, applied, httpserver, scheduled_prober
):
    """Issue 19, item 2: a check with a 60 s interval, just healthy; the target starts
    failing; `deploy` then `wait` exited 0 in 0.17 s on the result from before."""
    applied(estate(httpserver).replace("interval: 10", "interval: 60"))
    scheduled_prober()  # a new check is due at once, then every 60 s
    assert (
        portalctl("wait", "web", "--any-result", "--timeout", 30, "--interval", 0.2).exit_code == 0
    )
    httpserver.clear_all_handlers()
    httpserver.expect_request("/web").respond_with_data("broken", status=500)
    httpserver.expect_request("/db").respond_with_data("ok")

    # Plain wait, after the report: no result recorded since it began, so not usable.
    assert portalctl("deploy", "web", "--version", "2").exit_code == 0
    started = time.monotonic()
    waited = portalctl("wait", "web", "--timeout", 3, "--interval", 0.2)
    assert waited.exit_code == 1, waited.output
    assert time.monotonic() - started >= 3
    # The report made the portal check at once: the gate sees the failure, not the past.
    gated = portalctl("deploy", "web", "--version", "3", "--wait", "--timeout", 10)
    assert gated.exit_code == 1, gated.output
    assert "web 3: verification failed (failed after the release: http)" in gated.stderr
    assert "check http unhealthy: HTTP 500" in gated.stderr

    httpserver.clear_all_handlers()
    httpserver.expect_request("/web").respond_with_data("ok")
    started = time.monotonic()
    gated = portalctl("deploy", "web", "--version", "4", "--wait", "--timeout", 30)
    assert gated.exit_code == 0, gated.output
    assert "web 4: verification passed" in gated.stdout
    assert time.monotonic() - started < 30  # checked at once, not after its 60 s interval


def test_deploy_wait_gives_the_verdict_in_seconds_though_the_interval_is_120_s(
    portalctl, applied, httpserver, scheduled_prober, api
):
    """Issue 21's done-when: exit 1 for a broken release, 0 for a good one, each well within
    15 s with a 120 s check interval, and the API keeps both verdicts with their evidence."""
    applied(estate(httpserver).replace("interval: 10", "interval: 120"))
    scheduled_prober()
    assert portalctl("wait", "web", "--any-result", "--timeout", 30).exit_code == 0
    httpserver.clear_all_handlers()
    httpserver.expect_request("/web").respond_with_data("broken", status=500)
    httpserver.expect_request("/db").respond_with_data("ok")

    started = time.monotonic()
    broken = portalctl("deploy", "web", "--version", "5", "--wait", "--timeout", 60)
    assert broken.exit_code == 1, broken.output
    assert time.monotonic() - started < 15
    assert "check http unhealthy: HTTP 500" in broken.stderr

    httpserver.clear_all_handlers()
    httpserver.expect_request("/web").respond_with_data("ok")
    httpserver.expect_request("/db").respond_with_data("ok")
    started = time.monotonic()
    good = portalctl("deploy", "web", "--version", "6", "--wait", "--timeout", 60)
    assert good.exit_code == 0, good.output
    assert time.monotonic() - started < 15

    listed = api.call("GET", "/api/services/web/deployments").json()
    verdicts = {d["version"]: d["verification"] for d in listed}
    assert verdicts["5"]["state"] == "failed"
    assert verdicts["5"]["evidence"][0]["check"] == "http"
    assert verdicts["5"]["evidence"][0]["status"] == "unhealthy"
    assert verdicts["6"]["state"] == "passed"
    assert verdicts["6"]["evidence"][0]["status"] == "healthy"
    for verdict in verdicts.values():
        assert verdict["finished_at"] >= verdict["started_at"]


def test_wait_after_a_report_says_which_deployment_it_waits_after(
    portalctl, applied, httpserver, scheduled_prober
):
    applied(estate(httpserver))
    scheduled_prober()
    assert portalctl("deploy", "web", "--version", "9").exit_code == 0
    waited = portalctl("wait", "web", "--timeout", 30, "--interval", 0.2)
    assert waited.exit_code == 0, waited.output
    reported = f"{Deployment.objects.get(version='9').created_at:%Y-%m-%dT%H:%M:%S}"
    assert "web: results after the wait began, which is after deployment 9 (reported " in (
        waited.stdout
    )
    assert reported in waited.stdout.splitlines()[0]


def test_deploy_wait_with_a_bake_holds_until_the_bake_ends(
    portalctl, applied, httpserver, scheduled_prober
):
    applied(estate(httpserver).replace("interval: 10", "interval: 120"))
    scheduled_prober()
    started = time.monotonic()
    baked = portalctl("deploy", "web", "--version", "7", "--wait", "--bake", 3, "--timeout", 60)
    assert baked.exit_code == 0, baked.output
    assert time.monotonic() - started >= 3
    assert "held for 3 s" in baked.stdout
    assert Deployment.objects.get(version="7").bake_seconds == 3


def test_deploy_wait_json_carries_the_deployment_and_its_verdict(
    portalctl, applied, httpserver, scheduled_prober
):
    applied(estate(httpserver))
    scheduled_prober()
    result = portalctl("deploy", "web", "--version", "8", "--wait", "--timeout", 60, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["deployment"]["verification"]["state"] == "passed"

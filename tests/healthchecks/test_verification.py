"""A reported deployment is verified on results recorded after it (issue 21): the verdict,
its evidence, the bake, retries, the timeout, a hard dependency down before the release."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from healthchecks.engine import verification
from healthchecks.models import (
    CheckResult,
    CheckSchedule,
    CheckState,
    HealthCheck,
    ResultDetail,
    ServiceHealth,
    StatusChange,
)
from healthchecks.status import ErrorCode, Status
from portal.auth import system_actor
from services import deployments
from services.models import Deployment, Service
from tests.factories import DependencyFactory, ServiceFactory, make_check, next_due

pytestmark = pytest.mark.django_db

H, D, U = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY


def report(name="web", version="2", status="succeeded", **extra) -> Deployment:
    deployment, _ = deployments.report(
        name, version=version, status=status, config_version=None, config_hash="", link="",
        actor=system_actor("ci"), **extra,
    )  # fmt: skip
    return deployment


def result(check, at, status, error="", code=None) -> None:
    code = code if code is not None else (ErrorCode.NONE if status == H else ErrorCode.HTTP_STATUS)
    CheckResult.objects.create(health_check=check, at=at, status=status, error_code=code)
    CheckState.objects.filter(health_check=check).update(last_result_at=at)  # as the engine
    if error:
        ResultDetail.objects.create(
            health_check=check, at=at, outcome={"errors": [error], "warnings": []}
        )


def verdict(deployment, now):
    deployment.refresh_from_db()
    return verification.judge(deployment, now)


def test_a_release_passes_on_one_fresh_usable_round_and_the_verdict_is_stored_once():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, is_critical=True)
    make_check(web, name="extra", interval=120, is_critical=False)  # not gating
    deployment = report()
    assert deployment.verification_state == "pending"
    assert verdict(deployment, timezone.now()).state == "pending"
    result(http, deployment.created_at + timedelta(milliseconds=5), H)
    now = timezone.now()
    assert verification.verify_pending(now) == 1
    deployment.refresh_from_db()
    assert deployment.verification_state == "passed"
    assert deployment.verification_finished_at == now
    assert deployment.verification_evidence == [
        {"check": "http", "status": "healthy", "at": iso(deployment.created_at, 5), "error": ""}
    ]
    assert verification.verify_pending(now + timedelta(seconds=1)) == 0  # stored once


def iso(moment, ms=0) -> str:
    return (moment + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def test_a_pending_verification_says_what_it_waits_for():
    web = ServiceFactory(name="web")
    make_check(web, name="http", interval=120)
    deployment = report()
    verification.verify_pending(timezone.now())
    deployment.refresh_from_db()
    assert (deployment.verification_state, deployment.verification_reason) == (
        "pending",
        "waiting for http",
    )


def test_a_result_from_before_the_report_never_passes_it():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, is_critical=True)
    before = timezone.now() - timedelta(seconds=1)
    result(http, before, H)
    deployment = report()
    found = verdict(deployment, deployment.created_at + timedelta(seconds=30))
    assert found.state == "pending"
    assert "waiting for http" in found.reason


def test_a_failure_after_the_report_fails_it_with_the_check_and_its_error_as_evidence():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, is_critical=True)
    deployment = report()
    at = deployment.created_at + timedelta(seconds=1)
    result(http, at, U, error="HTTP 500 from /healthz")
    found = verdict(deployment, at + timedelta(seconds=1))
    assert found.state == "failed"
    assert found.reason == "failed after the release: http"
    assert found.evidence == [
        {"check": "http", "status": "unhealthy", "at": iso(at), "error": "HTTP 500 from /healthz"}
    ]


def test_a_check_fails_it_only_past_its_retries():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, retries=1)
    deployment = report()
    start = deployment.created_at
    result(http, start + timedelta(seconds=1), U)
    assert verdict(deployment, start + timedelta(seconds=2)).state == "pending"
    result(http, start + timedelta(seconds=2), H)
    assert verdict(deployment, start + timedelta(seconds=3)).state == "passed"
    result(http, start + timedelta(seconds=3), U)
    result(http, start + timedelta(seconds=4), U)
    assert verdict(deployment, start + timedelta(seconds=5)).state == "failed"


def test_degraded_is_usable_and_says_so_in_the_evidence():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    deployment = report()
    result(http, deployment.created_at, D, code=ErrorCode.SLOW)
    found = verdict(deployment, deployment.created_at + timedelta(seconds=1))
    assert found.state == "passed"
    assert found.evidence[0]["status"] == "degraded"
    assert found.evidence[0]["error"] == "slower than the latency threshold"


def test_the_bake_needs_a_usable_result_due_after_it():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    deployment = report(bake_seconds=30)
    start = deployment.created_at
    result(http, start + timedelta(seconds=1), H)
    assert verdict(deployment, start + timedelta(seconds=10)).state == "pending"
    assert verdict(deployment, start + timedelta(seconds=31)).state == "pending"
    result(http, start + timedelta(seconds=30), H)
    found = verdict(deployment, start + timedelta(seconds=31))
    assert (found.state, found.reason) == (
        "passed",
        "every gating check usable after the release, held for 30 s",
    )


def test_a_failure_during_the_bake_fails_it_though_the_check_recovered():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    deployment = report(bake_seconds=30)
    start = deployment.created_at
    result(http, start + timedelta(seconds=5), U)
    result(http, start + timedelta(seconds=30), H)
    assert verdict(deployment, start + timedelta(seconds=31)).state == "failed"


def test_the_bake_defaults_to_the_services_own():
    ServiceFactory(name="web", deploy_bake_seconds=45)
    assert report().bake_seconds == 45
    assert report(version="3", bake_seconds=0).bake_seconds == 0


@override_settings(DEPLOY_VERIFY_TIMEOUT_SECONDS=60)
def test_no_fresh_usable_result_within_the_timeout_after_the_bake_fails_it():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    deployment = report(bake_seconds=10)
    start = deployment.created_at
    result(http, start + timedelta(seconds=65), Status.UNKNOWN, code=ErrorCode.INTERNAL)
    assert verdict(deployment, start + timedelta(seconds=69)).state == "pending"
    found = verdict(deployment, start + timedelta(seconds=70))
    assert found.state == "failed"
    assert found.reason == "no fresh usable result within 60 s after the bake: http"
    assert found.evidence == [
        {"check": "http", "status": "unknown", "at": iso(start, 65_000), "error": "probe error"}
    ]


@override_settings(DEPLOY_VERIFY_TIMEOUT_SECONDS=60)
def test_the_engines_own_downtime_is_not_held_against_the_release():
    """Breaking trial (issue 21): the portal stopped for longer than the timeout, and on its
    first tick back the release failed ("no fresh usable result") and was rolled back."""
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    deployment = report(bake_seconds=5)
    start = deployment.created_at
    result(http, start + timedelta(seconds=1), H)  # then the engine stops
    back = start + timedelta(seconds=200)
    waiting = verdict(deployment, back)
    assert waiting.state == "pending"
    assert waiting.reason.startswith("waiting for the engine to probe http again")
    result(http, back, H)  # its first round after the restart
    assert verdict(deployment, back + timedelta(seconds=1)).state == "passed"


@override_settings(DEPLOY_VERIFY_TIMEOUT_SECONDS=60)
def test_a_hard_dependency_down_before_the_release_is_not_blamed_on_it():
    web, db = ServiceFactory(name="web"), ServiceFactory(name="db")
    DependencyFactory(service=web, depends_on=db, kind="hard")
    down_since = timezone.now() - timedelta(minutes=5)
    ServiceHealth.objects.create(service=db, status=Status.UNHEALTHY, since=down_since)
    http = make_check(web, name="http", interval=120)
    deployment = report()
    result(http, deployment.created_at + timedelta(seconds=1), U)
    waiting = verdict(deployment, deployment.created_at + timedelta(seconds=2))
    assert waiting.state == "pending"
    assert f"hard dependency unhealthy before the release: db (since {iso(down_since)})" in (
        waiting.reason
    )
    result(http, deployment.created_at + timedelta(seconds=58), U)  # still probed, still down
    late = verdict(deployment, deployment.created_at + timedelta(seconds=61))
    assert late.state == "failed"
    assert late.reason.endswith("(the release is not blamed)")


def test_failures_while_a_dependency_down_before_the_release_was_down_do_not_count():
    """Breaking trial (issue 21): the dependency down before the release recovered, the
    check with it, and the release was failed on a failure recorded while the dependency
    was still down."""
    web, db = ServiceFactory(name="web"), ServiceFactory(name="db")
    DependencyFactory(service=web, depends_on=db, kind="hard")
    before = timezone.now() - timedelta(minutes=5)
    StatusChange.objects.create(service=db, from_status=H, to_status=U, at=before)
    http = make_check(web, name="http", interval=120)
    deployment = report()
    start = deployment.created_at
    result(http, start + timedelta(seconds=1), U)
    result(http, start + timedelta(seconds=2), U)
    assert verdict(deployment, start + timedelta(seconds=3)).state == "pending"
    StatusChange.objects.create(
        service=db, from_status=U, to_status=H, at=start + timedelta(seconds=4)
    )
    result(http, start + timedelta(seconds=5), H)
    assert verdict(deployment, start + timedelta(seconds=6)).state == "passed"
    result(http, start + timedelta(seconds=7), U)  # after the recovery: the release's own
    found = verdict(deployment, start + timedelta(seconds=8))
    assert (found.state, found.reason) == ("failed", "failed after the release: http")


def test_a_dependency_that_went_down_after_the_release_excuses_nothing():
    web, db = ServiceFactory(name="web"), ServiceFactory(name="db")
    DependencyFactory(service=web, depends_on=db, kind="hard")
    http = make_check(web, name="http", interval=120)
    deployment = report()
    ServiceHealth.objects.create(service=db, status=Status.UNHEALTHY, since=timezone.now())
    result(http, deployment.created_at + timedelta(seconds=1), U)
    assert verdict(deployment, deployment.created_at + timedelta(seconds=2)).state == "failed"


def test_disabling_a_failing_check_during_the_bake_does_not_pass_the_release():
    """Breaking trial (issue 21): a check disabled mid-bake, its failures discarded, and the
    release passed at once with "nothing to verify"."""
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, retries=2)
    deployment = report(bake_seconds=20)
    result(http, deployment.created_at + timedelta(seconds=1), U)
    HealthCheck.objects.filter(pk=http.pk).update(enabled=False)
    found = verdict(deployment, deployment.created_at + timedelta(seconds=25))
    assert found.state == "pending"
    assert found.reason == "waiting for http"
    late = verdict(deployment, deployment.created_at + timedelta(seconds=20 + 121))
    assert late.state == "failed"  # a disabled check is not waited for by the engine rule


def test_a_service_without_probed_checks_passes_and_says_there_was_nothing_to_verify():
    web = ServiceFactory(name="web")
    make_check(web, name="beat", kind="heartbeat", target="")
    found = verdict(report(), timezone.now())
    assert (found.state, found.reason) == ("passed", "nothing to verify: no enabled probed check")


def test_results_that_say_nothing_about_the_target_do_not_count():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    deployment = report()
    at = deployment.created_at + timedelta(seconds=1)
    result(http, at, Status.UNKNOWN, code=ErrorCode.CHECKER_OVERLOADED)
    assert verdict(deployment, at).state == "pending"


def test_reports_of_the_version_being_verified_are_one_deployment_and_one_verification():
    ServiceFactory(name="web")
    first, created = deployments.report(
        "web", version="2", status="in_progress", config_version=None, config_hash="",
        link="", actor=system_actor("ci"),
    )  # fmt: skip
    again, created_again = deployments.report(
        "web", version="2", status="succeeded", config_version=None, config_hash="",
        link="https://ci.example.com/7", actor=system_actor("ci"),
    )  # fmt: skip
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Deployment.objects.count() == 1
    row = Deployment.objects.get()
    assert (row.status, row.link, row.verification_state) == (
        "succeeded",
        "https://ci.example.com/7",
        "pending",
    )


def test_the_report_that_follows_a_verdict_is_the_same_deployment_and_a_new_rollout_is_not():
    """docs/pipelines.md's flow: in_progress --wait, then succeeded: one verification. A new
    in_progress report of the same version after the verdict is a new rollout."""
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120)
    first = report(status="in_progress")
    result(http, first.created_at, H)
    verification.verify_pending(timezone.now())
    assert report(status="succeeded").pk == first.pk
    row = Deployment.objects.get()
    assert (row.status, row.verification_state) == ("succeeded", "passed")
    again = report(status="in_progress")
    assert again.pk != first.pk
    assert again.verification_state == "pending"


def test_the_pipeline_calling_its_rollout_failed_fails_the_verification_at_once():
    ServiceFactory(name="web")
    report(status="in_progress")
    report(status="failed")
    row = Deployment.objects.get()
    assert (row.verification_state, row.verification_reason) == (
        "failed",
        "the pipeline reported the rollout failed",
    )


def test_a_report_of_a_failed_rollout_has_nothing_to_verify():
    ServiceFactory(name="web")
    assert report(status="rolled_back").verification_state == ""


@override_settings(DEPLOY_VERIFY_INTERVAL_SECONDS=5)
def test_during_a_verification_the_checks_run_every_few_seconds_then_at_their_own_interval():
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, next_due_at=timezone.now())
    deployment = report(bake_seconds=60)
    assert next_due(http) >= deployment.created_at  # the report's round: due after it
    now = timezone.now()
    claimed = now + timedelta(seconds=120)  # as the claim of that round moved it on
    CheckSchedule.objects.filter(health_check=http).update(next_due_at=claimed)
    verification.verify_pending(now)
    assert next_due(http) == now + timedelta(seconds=5)
    last = deployment.created_at + timedelta(seconds=61)
    result(http, last, H)
    assert verification.verify_pending(last + timedelta(seconds=1)) == 1
    assert next_due(http) == last + timedelta(seconds=120)  # its own, from its last result


def test_a_check_overdue_at_the_report_is_claimed_for_a_slot_after_it():
    """A slot due before the report and probed after it says nothing of the release: the
    report moves an overdue slot to its own moment."""
    web = ServiceFactory(name="web")
    http = make_check(web, name="http", interval=120, next_due_at=timezone.now())
    deployment = report()
    assert next_due(http) >= deployment.created_at


# --- the property: a verdict never rests on a result from before the report ------------------

statuses = st.sampled_from([H, D, U])
offsets = st.lists(st.tuples(st.integers(-60, 60), statuses), max_size=8, unique_by=lambda t: t[0])


@settings(max_examples=40, deadline=None)
@given(results=offsets, retries=st.integers(0, 2), bake=st.sampled_from([0, 20]))
def test_results_from_before_the_report_never_change_the_verdict(results, retries, bake):
    """Whatever was recorded before the release, the verdict is the one its results after
    it give; and it passes only on a usable result due after the bake."""
    CheckResult.objects.all().delete()
    Deployment.objects.all().delete()
    web = Service.objects.filter(name="web").first() or ServiceFactory(name="web")
    http = web.checks.first() or make_check(web, name="http")
    HealthCheck.objects.filter(pk=http.pk).update(retries=retries)
    deployment = report(bake_seconds=bake)
    start = deployment.created_at
    for offset, status in results:
        if offset >= 0:
            result(http, start + timedelta(seconds=offset), status)
    now = start + timedelta(seconds=61)
    without = verdict(deployment, now)
    for offset, status in results:
        if offset < 0:
            result(http, start + timedelta(seconds=offset), status)
    with_old = verdict(deployment, now)
    assert (with_old.state, with_old.reason) == (without.state, without.reason)
    if with_old.state == "passed":
        after_bake = [s for o, s in sorted(results) if o >= bake]
        assert after_bake and after_bake[-1] in (H, D)

"""Deployments as events (issue 21, items 4 and 5): started, passed and failed reach the
channels that ask for them and set off rules; a failed verification rolls the configuration
back when the service or a rule asks for it, and the verdict says what was done."""

from datetime import timedelta

import pytest
from django.utils import timezone

from automation.models import Delivery
from healthchecks.engine import verification
from healthchecks.models import CheckResult, CheckState, ServiceHealth
from healthchecks.status import ErrorCode, Status
from portal.auth import system_actor
from portal.models import AuditEntry
from services import configs, deployments
from services.models import ConfigVersion, Deployment
from tests.automation.conftest import channel, send_later
from tests.factories import DependencyFactory, ServiceFactory, make_check

pytestmark = pytest.mark.django_db(transaction=True)

CI = system_actor("ci")
SCHEMA = {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 100}}}


@pytest.fixture
def web():
    service = ServiceFactory(name="web")
    make_check(service, name="http", interval=120)
    return service


def report(
    version: str, config_version: int | None = None, status: str = "succeeded", **extra
) -> Deployment:
    deployment, _ = deployments.report(
        "web", version=version, status=status, config_version=config_version,
        config_hash="", link="", actor=CI, **extra,
    )  # fmt: skip
    return deployment


def judged(deployment: Deployment, status: int) -> Deployment:
    """A fresh result after the report, then the dispatcher's verdict."""
    check = deployment.service.checks.get()
    code = ErrorCode.NONE if status == Status.HEALTHY else ErrorCode.HTTP_STATUS
    CheckResult.objects.create(
        health_check=check, at=deployment.created_at, status=status, error_code=code
    )
    CheckState.objects.filter(health_check=check).update(last_result_at=deployment.created_at)
    verification.verify_pending(timezone.now() + timedelta(seconds=1))
    deployment.refresh_from_db()
    return deployment


def publish(values: dict) -> int:
    current = configs.current_version(configs.get_service("web"))
    outcome = configs.publish("web", values, current.version if current else 0, CI)
    return outcome.version.version


def test_channels_hear_the_deployment_events_they_ask_for_and_only_those(web, receiver):
    channel("deploys", receiver.url, events=["deployment_started", "deployment_failed"])
    channel("alerts", receiver.url)  # the alert events: no deployment event
    good = judged(report("1"), Status.HEALTHY)
    bad = judged(report("2"), Status.UNHEALTHY)
    assert (good.verification_state, bad.verification_state) == ("passed", "failed")
    send_later()
    assert sorted(receiver.titles()) == [
        "[DEPLOYMENT FAILED] web",
        "[DEPLOYMENT] web",
        "[DEPLOYMENT] web",
    ]
    failed = next(b for b in receiver.bodies if b["title"] == "[DEPLOYMENT FAILED] web")
    assert (
        "web: deployment of 2 failed verification: failed after the release: http."
        in (failed["message"])
    )
    assert set(Delivery.objects.values_list("channel_name", flat=True)) == {"deploys"}


def test_a_channel_left_without_events_hears_the_alert_events_only(automation, receiver):
    answer = automation.call("put", "/api/notification-channels/ops", {"url": receiver.url})
    assert answer.status_code == 201, answer.json()
    assert answer.json()["events"] == ["down", "degraded", "recovered"]


def test_a_failed_release_rolls_the_configuration_back_when_the_service_asks(web):
    web.on_failed_verification = "rollback_config"
    web.save()
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    second = publish({"timeout": 99})
    bad = judged(report("2", config_version=second), Status.UNHEALTHY)
    restored = ConfigVersion.objects.filter(service=web).order_by("-version").first()
    assert restored.version == second + 1
    assert configs.reveal(restored) == {"timeout": 10}
    assert restored.rolled_back_from == first
    assert f"deployment {bad.pk} (2) failed verification" in restored.comment
    assert bad.verification_reason.endswith(
        f"configuration rolled back to version {first} (what 1 carried) as version {second + 1}"
    )
    entry = AuditEntry.objects.filter(action="config.rollback").get()
    assert entry.actor == "system:verification"


def test_nothing_is_rolled_back_when_the_service_does_not_ask(web):
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    second = publish({"timeout": 99})
    judged(report("2", config_version=second), Status.UNHEALTHY)
    assert ConfigVersion.objects.filter(service=web).count() == 2


def test_a_release_not_blamed_rolls_nothing_back_and_says_so(web, settings):
    settings.DEPLOY_VERIFY_TIMEOUT_SECONDS = 1
    web.on_failed_verification = "rollback_config"
    web.save()
    db = ServiceFactory(name="db")
    DependencyFactory(service=web, depends_on=db, kind="hard")
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    ServiceHealth.objects.create(
        service=db, status=Status.UNHEALTHY, since=timezone.now() - timedelta(minutes=1)
    )
    second = publish({"timeout": 99})
    deployment = report("2", config_version=second)
    CheckResult.objects.create(
        health_check=web.checks.get(),
        at=deployment.created_at,
        status=Status.UNHEALTHY,
        error_code=ErrorCode.HTTP_STATUS,
    )
    CheckState.objects.filter(health_check__service=web).update(
        last_result_at=deployment.created_at
    )
    verification.verify_pending(deployment.created_at + timedelta(seconds=2))
    deployment.refresh_from_db()
    assert deployment.verification_state == "failed"
    assert "no configuration rolled back: the release is not blamed" in (
        deployment.verification_reason
    )
    assert ConfigVersion.objects.filter(service=web).count() == 2


def test_a_rollback_the_current_schema_refuses_is_not_stored_and_the_verdict_says_why(web):
    web.on_failed_verification = "rollback_config"
    web.config_validation_level = "strict"
    web.save()
    first = publish({"timeout": 500})
    judged(report("1", config_version=first), Status.HEALTHY)
    configs.put_schema("web", SCHEMA, CI)
    second = publish({"timeout": 50})
    bad = judged(report("2", config_version=second), Status.UNHEALTHY)
    assert ConfigVersion.objects.filter(service=web).count() == 2
    assert (
        "configuration rollback refused: version 1 does not match the current schema; "
        "nothing was stored (values.timeout: 500 is greater than the maximum of 100)"
    ) in bad.verification_reason


def test_a_deployment_failed_rule_rolls_back_and_notifies(web, make_token, receiver):
    from tests.conftest import ApiClient

    author = ApiClient(make_token(["automation:read", "automation:write", "config:write"]).secret)
    channel("ops", receiver.url, events=["down"])
    rule = {
        "trigger": "deployment_failed",
        "scope": {"services": ["web"]},
        "actions": [{"type": "rollback_config"}, {"type": "notify", "channel": "ops"}],
    }
    answer = author.call("put", "/api/automation/rules/undo", rule)
    assert answer.status_code == 201, answer.json()
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    second = publish({"timeout": 99})
    bad = judged(report("2", config_version=second), Status.UNHEALTHY)
    send_later()
    restored = ConfigVersion.objects.filter(service=web).order_by("-version").first()
    assert (restored.version, configs.reveal(restored)) == (second + 1, {"timeout": 10})
    bad.refresh_from_db()
    assert bad.verification_reason.endswith("(rule undo)")
    assert receiver.titles() == ["[DEPLOYMENT FAILED] web"]


def test_rollback_config_belongs_to_deployment_failed_rules_only(automation):
    ServiceFactory(name="web")
    rule = {"trigger": "down", "actions": [{"type": "rollback_config"}]}
    answer = automation.call("put", "/api/automation/rules/undo", rule)
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"]["actions[0].type"] == (
        "rollback_config needs the trigger deployment_failed, not down"
    )


# --- the breaking trial's finds (issue 21) -------------------------------------------------


def rolls_back(service) -> None:
    service.on_failed_verification = "rollback_config"
    service.save()


def test_a_newer_rollout_supersedes_a_pending_verification_and_nothing_is_rolled_back(
    web, receiver
):
    """Trial 3 and 4: an older pending release failing later rolled back the configuration
    of the newer release that passed; pending verifications piled up without bound."""
    rolls_back(web)
    channel("deploys", receiver.url, events=["deployment_failed"])
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    older = report("2", config_version=publish({"timeout": 20}), bake_seconds=600)
    newer = judged(report("3", config_version=publish({"timeout": 30})), Status.HEALTHY)
    older.refresh_from_db()
    assert newer.verification_state == "passed"
    assert older.verification_state == "failed"
    assert older.verification_reason == (
        f"superseded by deployment {newer.pk} (3) before its verdict: not verified"
    )
    assert Deployment.objects.filter(verification_state="pending").count() == 0
    assert configs.reveal(configs.current_version(web)) == {"timeout": 30}
    assert not Delivery.objects.exists()  # no event for a release nobody verified


def test_a_rollback_restores_only_what_the_current_schema_accepts_even_when_lenient(web):
    """Trial 8: a lenient service stored the rolled-back version marked invalid."""
    rolls_back(web)
    web.config_validation_level = "lenient"
    web.save()
    first = publish({"timeout": 500})
    judged(report("1", config_version=first), Status.HEALTHY)
    configs.put_schema("web", SCHEMA, CI)
    second = publish({"timeout": 50})
    bad = judged(report("2", config_version=second), Status.UNHEALTHY)
    assert ConfigVersion.objects.filter(service=web).count() == 2
    assert "configuration rollback refused: version 1 does not match" in bad.verification_reason


def test_the_rollback_skips_a_release_its_pipeline_reported_failed(web):
    """Trial 9: a deployment that passed verification and then was reported failed by its
    pipeline was the rollback's target."""
    rolls_back(web)
    good = publish({"timeout": 10})
    judged(report("1", config_version=good), Status.HEALTHY)
    later = publish({"timeout": 20})
    judged(report("2", config_version=later), Status.HEALTHY)
    report("2", status="failed")  # the pipeline's later step failed it
    bad = judged(report("3", config_version=publish({"timeout": 30})), Status.UNHEALTHY)
    assert "configuration rolled back to version 1 (what 1 carried)" in bad.verification_reason


def test_a_pipelines_failed_report_rolls_nothing_back_when_a_dependency_was_down(web):
    """Trial 13: the pipeline's own failed report blamed the release whatever its hard
    dependencies said."""
    rolls_back(web)
    db = ServiceFactory(name="db")
    DependencyFactory(service=web, depends_on=db, kind="hard")
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    ServiceHealth.objects.create(
        service=db, status=Status.UNHEALTHY, since=timezone.now() - timedelta(minutes=1)
    )
    second = publish({"timeout": 99})
    report("2", config_version=second, status="in_progress")
    report("2", status="failed")
    row = Deployment.objects.get(version="2")
    assert row.verification_state == "failed"
    assert "no configuration rolled back: the release is not blamed" in row.verification_reason
    assert ConfigVersion.objects.filter(service=web).count() == 2
    assert AuditEntry.objects.filter(action="deployment.verified").exists()


def test_a_rules_rollback_respects_blame(web, make_token, settings):
    """Trial 7: the rule's rollback_config rolled back a release that was not blamed."""
    from tests.conftest import ApiClient

    settings.DEPLOY_VERIFY_TIMEOUT_SECONDS = 1
    author = ApiClient(make_token(["automation:read", "automation:write", "config:write"]).secret)
    rule = {"trigger": "deployment_failed", "actions": [{"type": "rollback_config"}]}
    assert author.call("put", "/api/automation/rules/undo", rule).status_code == 201
    db = ServiceFactory(name="db")
    DependencyFactory(service=web, depends_on=db, kind="hard")
    first = publish({"timeout": 10})
    judged(report("1", config_version=first), Status.HEALTHY)
    ServiceHealth.objects.create(
        service=db, status=Status.UNHEALTHY, since=timezone.now() - timedelta(minutes=1)
    )
    deployment = report("2", config_version=publish({"timeout": 99}))
    CheckResult.objects.create(
        health_check=web.checks.get(),
        at=deployment.created_at,
        status=Status.UNHEALTHY,
        error_code=ErrorCode.HTTP_STATUS,
    )
    CheckState.objects.filter(health_check__service=web).update(
        last_result_at=deployment.created_at
    )
    verification.verify_pending(deployment.created_at + timedelta(seconds=2))
    send_later()
    deployment.refresh_from_db()
    assert deployment.verification_state == "failed"
    assert "no configuration rolled back: the release is not blamed (rule undo)" in (
        deployment.verification_reason
    )
    assert ConfigVersion.objects.filter(service=web).count() == 2

"""A report of the version being verified meeting its verdict (breaking trial, issue 21):
the report held the service's row and waited for the deployment's, the verdict held the
deployment's and waited for the service's (a delivery's foreign key) -- a deadlock, one side
answered 503 and the pipeline's `failed` report was lost. The verdict now takes the
service's row first, as a report does."""

import threading
import time

import pytest
from django.db import close_old_connections

from portal.auth import system_actor
from services import deployments
from services.models import Deployment
from tests.automation.conftest import channel
from tests.factories import ServiceFactory, make_check

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failed_report_racing_the_verdict_waits_for_it_and_neither_is_lost(monkeypatch, receiver):
    ServiceFactory(name="web")
    make_check(deployments.get_service("web"), name="http")
    channel("deploys", receiver.url, events=["deployment_passed", "deployment_failed"])
    deployment, _ = deployments.report(
        "web", version="2", status="in_progress", config_version=None, config_hash="",
        link="", actor=system_actor("ci"),
    )  # fmt: skip
    move = deployments._move
    inside = threading.Event()

    def slow_move(*args, **kwargs):  # the report holds the service's row meanwhile
        inside.set()
        time.sleep(1.0)
        return move(*args, **kwargs)

    monkeypatch.setattr(deployments, "_move", slow_move)
    errors: list[BaseException] = []

    def in_thread(work):
        def run():
            try:
                work()
            except BaseException as exc:  # the test reports what happened
                errors.append(exc)
            finally:
                close_old_connections()

        return threading.Thread(target=run)

    def report_failed():
        deployments.report(
            "web", version="2", status="failed", config_version=None, config_hash="",
            link="", actor=system_actor("ci"),
        )  # fmt: skip

    failed = in_thread(report_failed)
    judged = in_thread(
        lambda: deployments.record_verdict(
            deployment.pk, "passed", "every gating check usable", [], deployment.created_at
        )
    )
    failed.start()
    assert inside.wait(10)
    judged.start()
    failed.join(30)
    judged.join(30)
    assert not errors, errors
    row = Deployment.objects.get(pk=deployment.pk)
    assert (row.status, row.verification_state) == ("failed", "failed")
    assert row.verification_reason == "the pipeline reported the rollout failed"

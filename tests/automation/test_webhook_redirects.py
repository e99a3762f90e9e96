"""Rules act through deliveries (docs/decisions.md): a rule's webhook is judged by the probes'
network policy and does not follow a redirect, which would lead past the judged address. A
remediation webhook answering 307 to another server: the attempt fails with that status and
the other server hears nothing -- through the real engine, the automation and two servers."""

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from automation.models import Delivery
from tests.automation.conftest import process, send_later

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_a_rules_webhook_that_redirects_is_not_followed(db_estate, webhook, automation):
    redirector = HTTPServer(host="127.0.0.1")
    redirector.expect_request("/restart").respond_with_response(
        Response("", 307, headers={"Location": webhook.url})
    )
    redirector.start()
    try:
        rule = {
            "trigger": "down",
            "scope": {"services": ["db"]},
            "actions": [{"type": "webhook", "url": f"http://127.0.0.1:{redirector.port}/restart"}],
        }
        answer = automation.call("put", "/api/automation/rules/restart-db", rule)
        assert answer.status_code == 201, answer.json()
        db_estate.down("db")
        process()
        send_later()
        assert len(redirector.log) >= 1  # the judged address was called
    finally:
        redirector.stop()
    attempts = Delivery.objects.get(rule__name="restart-db").attempt_rows.all()
    assert attempts and all(a.ok is False and a.http_status == 307 for a in attempts)
    assert webhook.calls == []

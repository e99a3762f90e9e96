"""Errors (docs/decisions.md): an unexpected exception is answered `internal_error` with no
detail, and logged -- with the request id the answer names and the traceback, so an operator
finds what happened from what the caller quotes."""

import json
import logging

import pytest

from services import queries

pytestmark = pytest.mark.django_db


def test_an_unexpected_failure_is_logged_with_its_request_id(api, caplog, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("the detail only the log may hold")

    monkeypatch.setattr(queries, "filter_services", explode)
    caplog.set_level(logging.INFO)
    answer = api.call("GET", "/api/services", headers={"X-Request-ID": "trace-500"})
    assert answer.status_code == 500
    assert answer.json()["error"]["request_id"] == "trace-500"
    assert "the detail only the log may hold" not in answer.content.decode()
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The line the console handler writes: JSON with the request id, and the traceback.
    line = json.loads(logging.getLogger().handlers[0].formatter.format(logged))
    assert line["request_id"] == "trace-500" and line["level"] == "error"
    assert logged.exc_info and str(logged.exc_info[1]) == "the detail only the log may hold"


@pytest.mark.parametrize("path", ["/health/services", "/metrics"])
def test_a_failure_outside_the_api_is_a_500_in_the_error_shape(settings, monkeypatch, path):
    """Django's error view answers the health reads and /metrics in the one shape too (with
    DEBUG off, as in production): JSON, `internal_error`, the request id, no detail."""
    from django.test import Client

    from healthchecks.reads import reports
    from healthchecks.web import views

    def explode(*args, **kwargs):
        raise RuntimeError("the detail only the log may hold")

    settings.DEBUG = False
    monkeypatch.setattr(reports, "services_overview", explode)
    monkeypatch.setattr(reports, "overview_text", explode)
    monkeypatch.setattr(views, "exposition", explode)
    answer = Client(raise_request_exception=False).get(path, headers={"X-Request-ID": "trace-h"})
    assert answer.status_code == 500
    assert answer["Content-Type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == "internal_error" and error["request_id"] == "trace-h"
    assert "the detail only the log may hold" not in answer.content.decode()

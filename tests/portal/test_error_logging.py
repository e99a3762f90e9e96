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

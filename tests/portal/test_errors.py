"""Every API error has one shape, the right status, and never a stack trace."""

import json
import logging

import pytest
from django.test import override_settings

from services import queries
from services.models import Service

pytestmark = pytest.mark.django_db


def assert_error_shape(res, status: int, code: str) -> dict:
    assert res.status_code == status
    assert res["Content-Type"].startswith("application/json")
    error = res.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == res["X-Request-ID"]
    assert "Traceback" not in res.content.decode()
    return error


def test_malformed_json_is_400_with_where(api):
    res = api.call("POST", "/api/registry/apply", raw=b'{"services": [')
    error = assert_error_shape(res, 400, "malformed_body")
    assert "line 1" in error["message"]


def test_a_body_that_is_not_utf8_is_400(api):
    res = api.call("POST", "/api/registry/apply", raw=b'{"teams": ["\xff"]}')
    assert_error_shape(res, 400, "malformed_body")


def test_a_json_document_of_the_wrong_kind_is_422(api):
    res = api.call("POST", "/api/registry/apply", raw=b"[1, 2]")
    assert_error_shape(res, 422, "invalid")


@override_settings(API_MAX_BODY_BYTES=2048)
def test_an_oversized_body_is_413_and_stores_nothing(api):
    services = [{"name": f"s{i}", "team": "t"} for i in range(100)]
    res = api.call("POST", "/api/registry/apply", {"teams": [{"name": "t"}], "services": services})
    error = assert_error_shape(res, 413, "payload_too_large")
    assert error["limit"] == 2048
    assert not Service.objects.exists()


@override_settings(API_MAX_JSON_DEPTH=5)
def test_a_too_deeply_nested_document_is_400(api):
    deep = {"services": [{"name": "a", "description": [[[[["x"]]]]]}]}
    res = api.call("POST", "/api/registry/apply", raw=json.dumps(deep).encode())
    error = assert_error_shape(res, 400, "malformed_body")
    assert "deeper than 5" in error["message"]


def test_an_unknown_api_path_is_a_json_404(api):
    assert_error_shape(api.call("GET", "/api/nothing-here"), 404, "not_found")


def test_a_wrong_method_is_405(api):
    res = api.call("DELETE", "/api/registry/startup-order")
    assert res.status_code == 405


def test_an_unexpected_failure_is_a_500_without_internals(api, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(queries, "filter_services", explode)
    res = api.call("GET", "/api/services")
    error = assert_error_shape(res, 500, "internal_error")
    assert "secret internal detail" not in res.content.decode()
    assert "request id" in error["message"]


def test_the_callers_request_id_is_kept_and_a_bad_one_replaced(anonymous):
    res = anonymous.call("GET", "/health/", headers={"X-Request-ID": "deploy-42.abc"})
    assert res["X-Request-ID"] == "deploy-42.abc"
    res = anonymous.call("GET", "/health/", headers={"X-Request-ID": "bad id\nforged"})
    assert res["X-Request-ID"] != "bad id\nforged" and len(res["X-Request-ID"]) == 32


def test_every_response_carries_a_request_id(anonymous, client):
    assert anonymous.call("GET", "/api/services")["X-Request-ID"]
    assert client.get("/accounts/login/")["X-Request-ID"]
    assert client.get("/no-such-page/")["X-Request-ID"]


def test_access_log_lines_are_json_with_who_route_status_duration(api, caplog):
    caplog.set_level(logging.INFO, logger="portal.access")
    res = api.call("GET", "/api/services/ghost", headers={"X-Request-ID": "trace-me"})
    assert res.status_code == 404
    records = [r for r in caplog.records if r.name == "portal.access"]
    assert len(records) == 1
    # Render the record the way the console handler does: one JSON object per line.
    formatter = logging.getLogger().handlers[0].formatter
    line = json.loads(formatter.format(records[0]))
    assert line["request_id"] == "trace-me"
    assert line["status"] == 404 and line["route"] == "api/services/<name>"
    assert line["who"].startswith("token:") and line["duration_ms"] >= 0
    assert line["method"] == "GET" and line["level"] == "info" and line["timestamp"]


def test_every_operation_declares_the_errors_any_request_may_get():
    """Clients and fuzzers read what an operation can answer from the document: the common
    errors (401, 403, 429, 503, ...) in the one error shape, beside its own successes."""
    from portal.api import api

    document = api.get_openapi_schema()
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = {str(code) for code in operation["responses"]}
            assert {"401", "403", "413", "415", "422", "429", "503"} <= responses, (method, path)


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api", "/health", "/accounts/login"])
def test_a_write_to_a_path_missing_its_slash_is_sent_on_with_its_method(
    client, settings, debug, method, path
):
    """With DEBUG on (make run) Django raised -- an HTML 500 for something a caller sent,
    which the rate limiter counted as a fault; with it off a 301 turned the write into a GET.
    A 308 keeps the method and the body (found in issue 19's breaking trial)."""
    settings.DEBUG = debug
    answer = getattr(client, method)(f"{path}?x=1", data="{}", content_type="application/json")
    assert answer.status_code == 308
    assert answer["Location"] == f"{path}/?x=1"
    followed = getattr(client, method)(
        answer["Location"], data="{}", content_type="application/json"
    )
    assert followed.status_code < 500

"""The OpenAPI document of the open surface outside /api/: the /health/... reads, the
heartbeat URLs and Prometheus' /metrics, served at /health/openapi.json.

A document of its own rather than operations in /api/openapi.json: these are plain Django
views with their own contract (no authentication, 200/503 as an answer, content negotiated
by Accept, text for Prometheus), and none of the main API's common errors (401, 403, 415)
applies to them. Written by hand beside the views it describes; the tests call every
operation and hold the answers to it (tests/system/test_health_openapi.py).
"""

from functools import cache

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from healthchecks.reads import healthjson
from healthchecks.reads.availability import EXCLUSIONS
from healthchecks.reads.history import WINDOWS
from healthchecks.status import Status
from portal.api import ERROR_SCHEMA

JSON = "application/json"
HEALTH_JSON = healthjson.CONTENT_TYPE


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more) -> dict:
    return {"type": [kind, "null"], **more}


TIME = _nullable("string", format="date-time")
MS = _nullable("number")


def _object(properties: dict, required: list[str] | None = None, extra: bool = True) -> dict:
    """An object with these properties, all required unless said otherwise; more keys may
    come (a client should ignore what it does not know)."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": extra,
    }


def _schemas() -> dict:
    word = {"type": "string", "enum": [s.label for s in Status]}
    health_word = {"type": "string", "enum": ["pass", "warn", "fail"]}
    counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
    percentiles = _object({"p50": MS, "p95": MS, "p99": MS})
    return {
        "Error": ERROR_SCHEMA,
        "StatusWord": word,
        "Liveness": _object({"status": {"const": "pass"}}),
        "ServiceSummary": _object(
            {
                "name": {"type": "string"},
                "status": _ref("StatusWord"),
                "critical": {"type": "boolean"},
                "since": TIME,
                "last_check_at": TIME,
                "response_ms": MS,
                "reason": {"type": "string"},
            }
        ),
        "Overview": _object(
            {
                "status": _ref("StatusWord"),
                "checked_at": {"type": "string", "format": "date-time"},
                "services": {"type": "array", "items": _ref("ServiceSummary")},
            }
        ),
        "CheckDetail": _object(
            {
                "name": {"type": "string"},
                "kind": {"type": "string"},
                "critical": {"type": "boolean"},
                "enabled": {"type": "boolean"},
                "status": _ref("StatusWord"),
                "since": TIME,
                "last_check_at": TIME,
                "response_ms": MS,
                "consecutive_failures": {"type": "integer", "minimum": 0},
                "stale": {"type": "boolean"},
                "waiting": {
                    "type": "boolean",
                    "description": "no settled result yet (never run, or its first failures "
                    "held back by retries): says nothing of the service, which names it "
                    '"waiting for first result" in its reason',
                },
                "errors": {"type": "array", "items": {"type": "string"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "details": {"type": "object"},
                "metrics": {"type": "object"},
            }
        ),
        "ServiceDetail": _object(
            {
                "name": {"type": "string"},
                "status": _ref("StatusWord"),
                "critical": {"type": "boolean"},
                "since": TIME,
                "reason": {"type": "string"},
                "results_since": {
                    "type": "string",
                    "format": "date-time",
                    "description": "with `?since=`: the moment from which results count",
                },
                "checks": {"type": "array", "items": _ref("CheckDetail")},
                "dependencies": {
                    "type": "array",
                    "items": _object(
                        {
                            "service": {"type": "string"},
                            "kind": {"type": "string", "enum": ["hard", "soft"]},
                            "status": _ref("StatusWord"),
                        }
                    ),
                },
                "errors": {"type": "array", "items": {"type": "string"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "metrics": _object({"response_ms": MS}),
            },
            required=[
                *("name", "status", "critical", "since", "reason", "checks", "dependencies"),
                *("errors", "warnings", "metrics"),
            ],
        ),
        "HealthCheckEntry": _object(
            {
                "componentId": {"type": "string"},
                "componentType": {"type": "string"},
                "status": health_word,
                "time": TIME,
                "observedValue": {"type": ["number", "string"]},
                "observedUnit": {"type": "string"},
                "output": {"type": "string"},
            },
            required=["componentId", "componentType", "status"],
        ),
        "HealthDocument": _object(
            {
                "status": health_word,
                "serviceId": {"type": "string"},
                "output": {"type": "string"},
                "notes": {"type": "array", "items": {"type": "string"}},
                "checks": {
                    "type": "object",
                    "description": "keyed `component:measurement` (`payments:status`, "
                    "`http:responseTime`, `ledger:dependency`)",
                    "additionalProperties": {
                        "type": "array",
                        "items": _ref("HealthCheckEntry"),
                    },
                },
            },
            required=["status", "checks"],
        ),
        "Uptime": _object(
            {
                "uptime": _nullable("number", minimum=0, maximum=1),
                "results": {"type": "integer", "minimum": 0},
                "latency_p50_ms": MS,
                "latency_p95_ms": MS,
                "latency_p99_ms": MS,
            }
        ),
        "Availability": _object(
            {
                "availability": _nullable("number", minimum=0, maximum=1),
                "observed_s": {"type": "integer"},
                "down_s": {"type": "integer"},
                "upstream_s": {"type": "integer"},
                "maintenance_s": {"type": "integer"},
                "unknown_s": {"type": "integer"},
                "excluded": {"type": "array", "items": {"enum": list(EXCLUSIONS)}},
            }
        ),
        "RawResult": _object(
            {
                "at": {"type": "string", "format": "date-time"},
                "status": _ref("StatusWord"),
                "response_ms": {"type": "number"},
                "error_code": {"type": "integer"},
            }
        ),
        "Rollup": _object(
            {
                "start": {"type": "string", "format": "date-time"},
                "count": {"type": "integer"},
                "failures": {"type": "integer"},
                "degraded": {"type": "integer"},
                "uptime": _nullable("number"),
                "latency_avg_ms": MS,
                "latency_max_ms": {"type": "number"},
                "latency_p95_ms": MS,
            }
        ),
        "History": _object(
            {
                "service": {"type": "string"},
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "resolution": {"type": "string", "enum": ["raw", "hour", "day"]},
                "checks": {
                    "type": "object",
                    "description": "check name -> raw results (resolution raw) or rollups",
                    "additionalProperties": {
                        "type": "array",
                        "items": {"anyOf": [_ref("RawResult"), _ref("Rollup")]},
                    },
                },
                "uptime": _object({w: _ref("Uptime") for w in WINDOWS}),
                "availability": _object({w: _ref("Availability") for w in WINDOWS}),
            }
        ),
        "MetricsSummary": _object(
            {
                "services": counts,
                "checks": counts,
                "checks_enabled": {"type": "integer", "minimum": 0},
                "throughput_per_s": {"type": "number", "minimum": 0},
                "lag_ms": percentiles,
                "latency_ms": percentiles,
                "window_s": {"type": "integer"},
                "generated_at": {"type": "string", "format": "date-time"},
            }
        ),
        "Predictions": _object(
            {
                "generated_at": TIME,
                "predictions": {
                    "type": "array",
                    "items": _object(
                        {
                            "service": {"type": "string"},
                            "check": _nullable("string"),
                            "kind": {
                                "type": "string",
                                "examples": [
                                    "latency_trend",
                                    "tls_expiry",
                                    "flapping",
                                    "error_budget_burn",
                                ],
                            },
                            "message": {"type": "string"},
                            "expected_at": TIME,
                            "confidence": {"type": "number"},
                            "evidence": {"type": "object"},
                        }
                    ),
                },
            }
        ),
    }


def _error(why: str, **headers: str) -> dict:
    response = {"description": why, "content": {JSON: {"schema": _ref("Error")}}}
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


MALFORMED = _error("a NUL character in the path or the query")
RATE_LIMITED = _error(
    "over the client's rate limit (route classes `health` and `heartbeat`)",
    **{"Retry-After": "seconds to wait"},
)
DATABASE_DOWN = _error(
    "the portal's database does not answer", **{"Retry-After": "seconds to wait"}
)
URI_TOO_LONG = _error("the URI (path and query) is longer than API_MAX_URL_BYTES")
HEADERS_TOO_LARGE = _error("a header, or all of them together, too large")


def _answers(ok: dict, *, database: bool = True, **more: dict) -> dict:
    """An operation's responses: its own, plus what every request here may get."""
    responses = {
        "200": ok,
        "400": MALFORMED,
        "414": URI_TOO_LONG,
        "429": RATE_LIMITED,
        "431": HEADERS_TOO_LARGE,
        **more,
    }
    if database:
        responses.setdefault("503", DATABASE_DOWN)
    return dict(sorted(responses.items()))


def _content(**by_media_type: str) -> dict:
    return {media: {"schema": _ref(name)} for media, name in by_media_type.items()}


NEGOTIATED = (
    "Send `Accept: application/health+json` for the IETF draft's document (status "
    "pass/warn/fail, `checks` with `observedValue`); otherwise plain JSON."
)
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the service's name (`backend` is the portal itself, evaluated live)",
}
SINCE = {
    "name": "since",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "a deploy gate: only results recorded since this moment count (ISO 8601 "
    "with its time zone, `Z` or `+hh:mm`; or `now`: the portal's clock); each critical "
    "check -- every probed check when none is -- must have one, and counts as its own last "
    "result; the answer says the moment in `results_since`",
}
DEPLOYMENT = {
    "name": "deployment",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "description": "a deploy gate for a reported deployment (its `id` in "
    "`POST /api/services/{name}/deployments`' answer): 200 only once its verification passed "
    "and the service is usable on results since its report; the answer's `deployment` gives "
    "the verdict; not with `since`",
}
TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 64},
    "description": "the check's heartbeat token: the URL is the credential",
}


def _heartbeat(failed: bool) -> dict:
    what = "a failure (the check turns unhealthy)" if failed else "a beat (the check is healthy)"
    operation = {
        "tags": ["heartbeats"],
        "summary": f"Report {what}",
        "description": "A service or cron job calls it; GET, POST and HEAD alike. The ping "
        "is recorded at once and moves the next due time to the ping plus interval plus "
        "grace; silence past that turns the check unhealthy.",
        "parameters": [TOKEN],
        "security": [],
        "responses": _answers(
            {"description": "recorded", "content": {"text/plain": {"schema": {"const": "OK\n"}}}},
            **{
                "404": _error("no heartbeat check has this token"),
                "413": _error("the body is over the size limit"),
            },
        ),
    }
    return {
        method: {**operation, "operationId": f"heartbeat{'_fail' if failed else ''}_{method}"}
        for method in ("get", "post", "head")
    }


def _paths() -> dict:
    health = ["health"]
    return {
        "/health/": {
            "get": {
                "tags": health,
                "operationId": "liveness",
                "summary": "The portal process answers (liveness)",
                "description": "No database, no Redis: readiness is `/health/service/backend`.",
                "security": [],
                "responses": _answers(
                    {"description": "alive", "content": _content(**{JSON: "Liveness"})},
                    database=False,
                ),
            }
        },
        "/health/services": {
            "get": {
                "tags": health,
                "operationId": "health_services",
                "summary": "Every service's status and the estate's",
                "description": NEGOTIATED,
                "security": [],
                "responses": _answers(
                    {
                        "description": "the estate",
                        "content": _content(**{JSON: "Overview", HEALTH_JSON: "HealthDocument"}),
                    }
                ),
            }
        },
        "/health/service/{name}": {
            "get": {
                "tags": health,
                "operationId": "health_service",
                "summary": "One service: a readiness probe and a deploy gate",
                "description": "200 while the service is usable (healthy or degraded), 503 "
                "when not (unhealthy, unknown, maintenance). " + NEGOTIATED,
                "parameters": [NAME, SINCE, DEPLOYMENT],
                "security": [],
                "responses": _answers(
                    {
                        "description": "usable: healthy or degraded",
                        "content": _content(
                            **{JSON: "ServiceDetail", HEALTH_JSON: "HealthDocument"}
                        ),
                    },
                    **{
                        "404": _error("no service by that name"),
                        "422": _error(
                            "`since` is not a moment (ISO 8601) nor `now`, `deployment` is "
                            "not one of the service's deployments, or both are given"
                        ),
                        "503": {
                            "description": "not usable (the same document), or the database "
                            "does not answer (the error shape, with Retry-After)",
                            "content": {
                                JSON: {"schema": {"anyOf": [_ref("ServiceDetail"), _ref("Error")]}},
                                HEALTH_JSON: {"schema": _ref("HealthDocument")},
                            },
                        },
                    },
                ),
            }
        },
        "/health/service/{name}/history": {
            "get": {
                "tags": health,
                "operationId": "health_service_history",
                "summary": "Results over a range, uptime and availability",
                "description": "Raw results up to 6 h, hourly rollups up to 14 days, daily "
                "beyond. `exclude=maintenance,upstream` leaves that time out of availability.",
                "parameters": [
                    NAME,
                    *(
                        {
                            "name": key,
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "format": "date-time"},
                            "description": why,
                        }
                        for key, why in (
                            ("from", "start (ISO 8601; default 24 h ago)"),
                            ("to", "end (ISO 8601; default now)"),
                        )
                    ),
                    {
                        "name": "check",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "one check only",
                    },
                    {
                        "name": "exclude",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "examples": ["maintenance,upstream"]},
                        "description": "comma-separated: " + ", ".join(EXCLUSIONS),
                    },
                ],
                "security": [],
                "responses": _answers(
                    {"description": "the history", "content": _content(**{JSON: "History"})},
                    **{
                        "404": _error("no service by that name, or no such check"),
                        "422": _error("a bad range or exclusion: `fields` names it"),
                    },
                ),
            }
        },
        "/health/metrics": {
            "get": {
                "tags": health,
                "operationId": "health_metrics",
                "summary": "The engine's last minute: counts, throughput, lag and latency",
                "security": [],
                "responses": _answers(
                    {"description": "the summary", "content": _content(**{JSON: "MetricsSummary"})}
                ),
            }
        },
        "/health/predictive": {
            "get": {
                "tags": health,
                "operationId": "health_predictive",
                "summary": "Trouble that is coming, as computed every minute",
                "security": [],
                "responses": _answers(
                    {"description": "predictions", "content": _content(**{JSON: "Predictions"})}
                ),
            }
        },
        "/health/heartbeat/{token}": _heartbeat(failed=False),
        "/health/heartbeat/{token}/fail": _heartbeat(failed=True),
        "/metrics": {
            "get": {
                "tags": ["metrics"],
                "operationId": "prometheus_metrics",
                "summary": "Prometheus text exposition",
                "description": "Service status and up, check and dispatch counters, latency and "
                "lag histograms, heartbeat ages of the background components, probe capacity, "
                "the rate limiter's factor, security events. See docs/operating.md.",
                "security": [],
                "responses": _answers(
                    {
                        "description": "the exposition",
                        "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                    }
                ),
            }
        },
        "/health/openapi.json": {
            "get": {
                "tags": ["health"],
                "operationId": "health_openapi",
                "summary": "This document",
                "security": [],
                "responses": _answers(
                    {
                        "description": "OpenAPI 3.1",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    database=False,
                ),
            }
        },
    }


NO_STORE = {
    "Cache-Control": {
        "description": "`no-store` among its directives: a live answer, never to be reused "
        "by a cache (docs/decisions.md)",
        "required": True,
        "schema": {"type": "string", "pattern": "(^|[ ,])no-store([ ,]|$)"},
    }
}


def _no_store(paths: dict) -> dict:
    """The answers the views give (200, their own 404 and 422) say they must not be stored;
    this document may be. (The health gate's 503 carries it too, but the same status from the
    middleware -- the database is down -- does not, so it is not declared there.)"""
    for template, methods in paths.items():
        if template == "/health/openapi.json":
            continue
        for operation in methods.values():
            operation["responses"] = {
                code: {**answer, "headers": {**answer.get("headers", {}), **NO_STORE}}
                if code in ("200", "404", "422")
                else answer
                for code, answer in operation["responses"].items()
            }
    return paths


@cache
def document() -> dict:
    """The document; built once per process (it depends on code only)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Service-operations portal: health, heartbeats and metrics",
            "version": "1",
            "description": "The open surface outside `/api/`, for probes, load balancers, "
            "pipelines, cron jobs and Prometheus. No authentication (a heartbeat's token is "
            "its URL). Errors are JSON in the API's error shape. The main API is described "
            "at `/api/openapi.json` (interactive: `/api/docs`).",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "health", "description": "status reads: liveness, readiness, history"},
            {"name": "heartbeats", "description": "pings from services and cron jobs"},
            {"name": "metrics", "description": "Prometheus"},
        ],
        "paths": _no_store(_paths()),
        "components": {"schemas": _schemas()},
    }


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    """GET /health/openapi.json."""
    return JsonResponse(document())

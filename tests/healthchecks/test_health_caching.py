"""Health answers are live: every answer of the /health/... views (and /metrics), plain JSON
and application/health+json alike, 200 or 503, says ``Cache-Control: no-store``, so no cache
between a probe or a deploy gate and the portal answers with an old status; the negotiated
ones say they vary by ``Accept``. Asked of a real HTTP server, for every operation of
/health/openapi.json, which declares the header (docs/decisions.md, "Health answers are never
cached")."""

import urllib.error
import urllib.request

import pytest

from healthchecks.web import openapi
from tests.system.test_health_openapi import TOKEN, make_estate

pytestmark = pytest.mark.django_db(transaction=True)
HEALTH_JSON = "application/health+json"


def _call(method: str, url: str, accept: str):
    request = urllib.request.Request(url, method=method, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def _directives(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",")}


def calls():
    """(method, path, operation): each operation of the health document with a path that
    answers (a service usable, one not usable, one unknown; a known heartbeat token)."""
    for template, methods in openapi.document()["paths"].items():
        if template == "/health/openapi.json":
            continue
        for method, operation in methods.items():
            if method == "head":
                continue
            names = ["web", "db", "nope"] if "{name}" in template else [""]
            for name in names:
                path = template.replace("{name}", name).replace("{token}", TOKEN)
                yield method.upper(), path, operation


def test_every_health_answer_says_no_store(live_server):
    make_estate()
    seen, missing = set(), []
    for method, path, operation in calls():
        for accept in ("application/json", HEALTH_JSON):
            status, headers = _call(method, live_server.url + path, accept)
            seen.add(status)
            if "no-store" not in _directives(headers["Cache-Control"]):
                missing.append(f"{method} {path} ({accept}) {status}: {headers['Cache-Control']}")
            negotiated = "health+json" in str(operation.get("description", ""))
            if negotiated and "accept" not in _directives(headers["Vary"]):
                missing.append(f"{method} {path} ({accept}) {status}: Vary {headers['Vary']}")
            declared = operation["responses"].get(str(status), {}).get("headers", {})
            if status != 503 and "Cache-Control" not in declared:
                missing.append(f"{method} {path} {status}: the document does not declare it")
    assert {200, 404, 503} <= seen  # usable, unknown, not usable: each answer was asked
    assert not missing, "\n".join(missing)

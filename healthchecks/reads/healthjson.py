"""Health documents in the IETF "Health Check Response Format for HTTP APIs" draft
(``application/health+json``): status pass / warn / fail, ``checks`` keyed
``component:measurement``, each with observedValue, observedUnit, status, time, output."""

from healthchecks.probes import KINDS

CONTENT_TYPE = "application/health+json"
_STATUS = {
    "healthy": "pass",
    "degraded": "warn",
    "unhealthy": "fail",
    "unknown": "fail",
    "maintenance": "warn",
}


def wants_health_json(request) -> bool:
    return CONTENT_TYPE in request.headers.get("Accept", "")


def status_word(status: str) -> str:
    return _STATUS[status]


def dependency_effect(kind: str, status: str) -> str:
    """A dependency's entry says what it does to *this* service, by the service's own rules
    (healthchecks.status.service_status): only an unhealthy hard dependency counts, and it
    degrades the service (warn). Its own status stays in observedValue. So no entry is ever
    worse than the document's status -- a client taking the worst entry gets the same answer."""
    return "warn" if kind == "hard" and status == "unhealthy" else "pass"


def service_document(detail: dict) -> dict:
    checks: dict[str, list] = {}
    for check in detail["checks"]:
        if not check["enabled"]:
            continue
        entry = {
            "componentId": check["name"],
            "componentType": check["kind"],
            "status": status_word(check["status"]),
            "time": check["last_check_at"],
        }
        if check["response_ms"] is not None:
            entry.update(observedValue=check["response_ms"], observedUnit="ms")
        output = "; ".join(check["errors"] or check["warnings"])
        if output:
            entry["output"] = output
        # A pushed check (a heartbeat) is about the beat, not a response time.
        pushed = check["kind"] in KINDS and KINDS[check["kind"]].pushed
        measurement = "heartbeat" if pushed else "responseTime"
        checks[f"{check['name']}:{measurement}"] = [entry]
    for dep in detail["dependencies"]:
        effect = dependency_effect(dep["kind"], dep["status"])
        checks[f"{dep['service']}:dependency"] = [
            {
                "componentId": dep["service"],
                "componentType": "service",
                "status": effect,
                "observedValue": dep["status"],
                "output": f"{dep['kind']} dependency, {dep['status']}"
                + (": degrades this service" if effect == "warn" else ""),
            }
        ]
    document = {
        "status": status_word(detail["status"]),
        "serviceId": detail["name"],
        "checks": checks,
    }
    if detail["reason"]:
        document["output"] = detail["reason"]
    if detail["warnings"]:
        document["notes"] = detail["warnings"]
    return document


def overview_document(overview: dict) -> dict:
    checks = {
        f"{s['name']}:status": [
            {
                "componentId": s["name"],
                "componentType": "service",
                "status": status_word(s["status"]),
                "observedValue": s["status"],
                "time": s["last_check_at"] or s["since"],
                **({"output": s["reason"]} if s["reason"] else {}),
            }
        ]
        for s in overview["services"]
    }
    return {"status": status_word(overview["status"]), "checks": checks}

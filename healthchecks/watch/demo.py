"""Demo targets the portal serves itself (``DEMO_ENDPOINTS``, on by default with DEBUG), so
`make run` shows every status within a minute without anything else running.

    /demo/healthy      always 200
    /demo/slow         200 after 0.8 s (checks with a 500 ms threshold: degraded)
    /demo/flaky        503 about one time in three
    /demo/down         503 always
    /demo/degrading    200, slower by 40 ms for every minute the process has run
    /demo/health-json  an application/health+json document with sub-checks

``POST /demo/switch/<name>`` with ``mode=down`` (or ``up``) makes a target fail or recover,
to watch dependents degrade and the overall status change.
"""

import json
import random
import time

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from portal import ratelimit

STARTED = time.monotonic()
SWITCHED_DOWN: set[str] = set()


def target(request, name: str):
    # Slow on purpose (slow, degrading): the rate limiter's stress signal must not read the
    # demo's sleeps as the portal's load (from minute 25 degrading takes over 1 s).
    ratelimit.mark_deliberate(request)
    if name in SWITCHED_DOWN:
        return HttpResponse("switched down\n", status=503)
    if name == "healthy":
        return HttpResponse("ok\n")
    if name == "slow":
        time.sleep(0.8)
        return HttpResponse("ok, slowly\n")
    if name == "flaky":
        ok = random.random() > 1 / 3  # noqa: S311 - a demo, not cryptography
        return HttpResponse("ok\n" if ok else "oops\n", status=200 if ok else 503)
    if name == "down":
        return HttpResponse("down\n", status=503)
    if name == "degrading":
        minutes = (time.monotonic() - STARTED) / 60
        time.sleep(min(5.0, 0.04 * minutes))
        return HttpResponse("ok\n")
    if name == "health-json":
        return _health_document()
    return HttpResponse("no such demo target\n", status=404)


def _health_document():
    minutes = (time.monotonic() - STARTED) / 60
    queue = round(5 + 3 * minutes)
    document = {
        "status": "pass" if queue < 100 else "warn",
        "checks": {
            "database:responseTime": [{"status": "pass", "observedValue": 3, "observedUnit": "ms"}],
            "queue:depth": [
                {
                    "status": "pass" if queue < 100 else "warn",
                    "observedValue": queue,
                    "output": "" if queue < 100 else "queue is backing up",
                }
            ],
        },
    }
    return HttpResponse(json.dumps(document), content_type="application/health+json")


@csrf_exempt
@require_POST
def switch(request, name: str):
    mode = request.POST.get("mode") or request.GET.get("mode", "down")
    if mode == "down":
        SWITCHED_DOWN.add(name)
    else:
        SWITCHED_DOWN.discard(name)
    return JsonResponse({"target": name, "down": name in SWITCHED_DOWN})

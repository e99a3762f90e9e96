"""Demo targets the portal serves itself (``DEMO_ENDPOINTS``, on by default with DEBUG), so
`make run` shows every status within a minute without anything else running.

    /demo/healthy      always 200
    /demo/slow         200 after 0.8 s (checks with a 500 ms threshold: degraded)
    /demo/flaky        503 about one time in three
    /demo/down         503 always
    /demo/degrading    200 after 40 ms, slower by 5 ms a minute for two hours (640 ms), back
                       to 40 ms within the next hour; and again, every three hours
    /demo/health-json  an application/health+json document with sub-checks: a queue that
                       fills for 40 minutes (warn from 100) and drains in 20, every hour

The trends cycle rather than run on (issue 28, item 1): a target that slowed without end put
the demo in an outage nobody caused after an hour or so, and left the predictions nothing to
predict. Each is a pure function of the minutes the web process has run, so that a test can
follow it over days without waiting for them.

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

# /demo/degrading, the ledger's target (its check's threshold: 400 ms, crossed from minute 72
# of each cycle): it degrades for DEGRADE_MINUTES, then recovers in RECOVER_MINUTES. Two hours
# of rise let /health/predictive, which fits the last hour, forecast the crossing ahead of it
# in every cycle, and drop the forecast as the target recovers.
LATENCY_LOW_MS = 40.0
LATENCY_HIGH_MS = 640.0
DEGRADE_MINUTES = 120.0
RECOVER_MINUTES = 60.0
# /demo/health-json's queue depth, on an hourly cycle: warn from QUEUE_WARN.
QUEUE_LOW, QUEUE_HIGH, QUEUE_WARN = 5, 125, 100
QUEUE_FILL_MINUTES, QUEUE_DRAIN_MINUTES = 40.0, 20.0


def _cycle(minutes: float, low: float, high: float, rise: float, fall: float) -> float:
    """From ``low`` up to ``high`` in ``rise`` minutes, back down in ``fall``; and again."""
    phase = minutes % (rise + fall)
    if phase < rise:
        return low + (high - low) * phase / rise
    return high - (high - low) * (phase - rise) / fall


def degrading_ms(minutes: float) -> float:
    """How long /demo/degrading takes ``minutes`` after the web process started."""
    return _cycle(minutes, LATENCY_LOW_MS, LATENCY_HIGH_MS, DEGRADE_MINUTES, RECOVER_MINUTES)


def queue_depth(minutes: float) -> int:
    """The queue depth /demo/health-json reports ``minutes`` after the web process started."""
    return round(_cycle(minutes, QUEUE_LOW, QUEUE_HIGH, QUEUE_FILL_MINUTES, QUEUE_DRAIN_MINUTES))


def minutes_running() -> float:
    return (time.monotonic() - STARTED) / 60


def target(request, name: str):
    # Slow on purpose (slow, degrading): the rate limiter's stress signal must not read the
    # demo's sleeps as the portal's load (slow takes 0.8 s, degrading up to 640 ms).
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
        time.sleep(degrading_ms(minutes_running()) / 1000)
        return HttpResponse("ok\n")
    if name == "health-json":
        return _health_document()
    return HttpResponse("no such demo target\n", status=404)


def _health_document():
    queue = queue_depth(minutes_running())
    backing_up = queue >= QUEUE_WARN
    document = {
        "status": "warn" if backing_up else "pass",
        "checks": {
            "database:responseTime": [{"status": "pass", "observedValue": 3, "observedUnit": "ms"}],
            "queue:depth": [
                {
                    "status": "warn" if backing_up else "pass",
                    "observedValue": queue,
                    "output": "queue is backing up" if backing_up else "",
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

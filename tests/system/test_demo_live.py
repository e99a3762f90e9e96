"""The README's "Demo", watched from outside while `make run` runs: within a minute
/health/services shows every status; switching the ledger's target down makes ledger
unhealthy, gives payments `hard dependency unhealthy: ledger` among its reasons and turns the
overall status unhealthy; switching it up brings ledger back."""

import time
import urllib.request

import pytest

from tests.healthchecks.servers import closed_port
from tests.portal import live_portal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not within {seconds} s"
        time.sleep(1)


def test_the_demo_shows_every_status_and_the_switch_takes_ledger_down_and_back(tmp_path):
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    env = live_portal.portal_env(port, tmp_path / "var")
    live_portal.load_demo(port, env)
    began = time.monotonic()
    portal = live_portal.start(port, env, tmp_path / "make-run.log")

    def services() -> dict:
        return live_portal.get_json(f"{base}/health/services")[1]

    def statuses() -> set[str]:
        return {s["status"] for s in services()["services"]}

    def status_of(name: str) -> str:
        return next(s["status"] for s in services()["services"] if s["name"] == name)

    try:
        live_portal.wait_until_up(f"{base}/health/", portal)
        every = {"healthy", "degraded", "unhealthy", "unknown"}
        wait_for(lambda: every <= statuses(), 60 - (time.monotonic() - began), "every status")
        print(f"every status shown {time.monotonic() - began:.1f} s after make run started")

        switch = urllib.request.Request(f"{base}/demo/switch/degrading?mode=down", method="POST")
        urllib.request.urlopen(switch, timeout=10).close()
        wait_for(lambda: status_of("ledger") == "unhealthy", 30, "ledger unhealthy")
        payments = wait_for(
            lambda: (
                (detail := live_portal.get_json(f"{base}/health/service/payments")[1])["status"]
                in ("degraded", "unhealthy")
                and "hard dependency unhealthy: ledger" in str(detail)
                and detail
            ),
            30,
            "payments naming ledger",
        )
        assert "hard dependency unhealthy: ledger" in str(payments)
        assert services()["status"] == "unhealthy"

        switch = urllib.request.Request(f"{base}/demo/switch/degrading?mode=up", method="POST")
        urllib.request.urlopen(switch, timeout=10).close()
        wait_for(lambda: status_of("ledger") != "unhealthy", 30, "ledger back")
    finally:
        assert live_portal.stop(portal) == 0

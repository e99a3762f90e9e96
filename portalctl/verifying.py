"""Waiting for a deployment's verdict: the portal verifies a reported release on results
recorded after the report (``verification`` on the deployment), and ``deploy --wait`` polls
``GET /api/services/{name}/deployments/{id}`` until it says passed or failed.

Unreachable answers (the portal restarting mid-deploy) are waited through: the verification
lives in the portal's database and resumes when it is back.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from portalctl.client import Portal, Unreachable
from portalctl.output import shown


@dataclass
class VerdictWaiter:
    portal: Portal
    service: str
    deployment: dict  # the report's answer: id and verification
    timeout: float
    interval: float = 1.0
    report: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    last_reason: str = field(default="", init=False)

    def run(self) -> dict:
        """The deployment once its verification is no longer pending, or as last read when
        the timeout passes first (its state still pending)."""
        deadline = self.clock() + self.timeout
        current = self.deployment
        while True:
            state = current["verification"]["state"]
            if state != "pending":
                return current
            self._say(current["verification"]["reason"])
            now = self.clock()
            if now >= deadline:
                return current
            self.sleep(min(self.interval, deadline - now))
            try:
                current = self.portal.get(self._path())
            except Unreachable as exc:
                self._say(f"portal unreachable ({exc}); the verification resumes when it is back")

    def _path(self) -> str:
        return (
            f"/api/services/{quote(self.service, safe='')}/deployments/{int(self.deployment['id'])}"
        )

    def _say(self, reason: str) -> None:
        if reason and reason != self.last_reason:
            self.report(f"verifying {shown(self.service)}: {shown(reason)}")
            self.last_reason = reason


def verdict_lines(deployment: dict) -> list[str]:
    """For people: the verdict, its reason and each check it rests on that was not healthy."""
    verification = deployment["verification"]
    lines = [
        f"{shown(deployment['service'])} {shown(deployment['version'])}: "
        f"verification {shown(verification['state'])} ({shown(verification['reason'])})"
    ]
    for item in verification.get("evidence") or []:
        if item.get("status") == "healthy":
            continue
        error = f": {shown(item['error'])}" if item.get("error") else ""
        lines.append(f"  check {shown(item['check'])} {shown(item['status'])}{error}")
    return lines

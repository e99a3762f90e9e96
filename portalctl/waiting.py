"""Waiting until services are usable, as ``/health/service/{name}`` says (200: healthy or
degraded; 503: not), the same answer a readiness probe or a deploy gate gets.

A poll reads every service still being waited for; with ``dependencies`` the set grows with
the hard dependencies each answer names (and theirs), so a service is waited for with
everything it cannot start without.

The services named are gated (``fresh``): only results the portal recorded after the wait
began count, so a release rolled out just before is never passed on a result from before it.
The first poll asks ``?since=now`` and the portal says which moment that was (its clock,
not the job's); later polls ask since that moment. Dependencies, which the job did not roll
out, are read as they are.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from portalctl.client import Portal, Refused, Unreachable, refused
from portalctl.output import shown


@dataclass
class State:
    name: str
    status: str = "unknown"
    usable: bool = False
    reason: str = ""
    failing: list[str] = field(default_factory=list)  # "check: error" of checks not healthy
    hard_dependencies: list[str] = field(default_factory=list)
    results_since: str | None = None  # the moment from which results count (gated ones)

    def line(self) -> str:
        """For people: what the portal said, its control characters written out."""
        why = f" ({shown(self.reason)})" if self.reason and not self.usable else ""
        return f"{shown(self.name)}: {shown(self.status)}{why}"

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "usable": self.usable,
            "reason": self.reason,
            "failing_checks": self.failing,
        }


class NoSuchService(Exception):
    pass


def read_state(portal: Portal, name: str, since: str | None = None) -> State:
    """One service's state (counting only results since ``since`` when given); NoSuchService
    for a 404 (it will not appear by waiting), ``Refused`` for any other error answer."""
    query = f"?{urlencode({'since': since})}" if since else ""
    response = portal.send("GET", f"/health/service/{quote(name, safe='')}{query}")
    if response.status == 404:
        raise NoSuchService(f"no service named {name!r}")
    if response.status not in (200, 503):
        raise refused(response)
    document = response.json()
    return State(
        name=name,
        results_since=document.get("results_since"),
        status=document.get("status", "unknown"),
        usable=response.status == 200,
        reason=document.get("reason", ""),
        failing=failing_checks(document),
        hard_dependencies=[
            d["service"] for d in document.get("dependencies", []) if d.get("kind") == "hard"
        ],
    )


def failing_checks(document: dict) -> list[str]:
    """Each enabled check that is not healthy, with its errors: why a service is not usable."""
    found = []
    for check in document.get("checks", []):
        if not check.get("enabled", True) or check.get("status") == "healthy":
            continue
        errors = "; ".join(check.get("errors") or []) or "no error reported"
        found.append(f"{check['name']} ({check.get('status')}): {errors}")
    return found


@dataclass
class Waiter:
    portal: Portal
    names: list[str]
    timeout: float
    interval: float = 2.0
    dependencies: bool = False
    report: Callable[[str], None] = print  # a line per change
    live: Callable[[str], None] | None = None  # a status line rewritten in place (a terminal)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    states: dict[str, State] = field(default_factory=dict)
    fresh: bool = True  # the services named count only results recorded after the wait began
    since: dict[str, str] = field(default_factory=dict)

    def run(self) -> bool:
        """True once every service is usable; False when the timeout passes first."""
        started = self.clock()
        deadline = started + self.timeout
        targets = list(dict.fromkeys(self.names))
        while True:
            targets = self.poll(targets)
            if all(self.states[n].usable for n in targets):
                return True
            now = self.clock()
            if now >= deadline:
                return False
            if self.live:
                self.live(self.summary(targets, now - started))
            self.sleep(min(self.interval, deadline - now))

    def poll(self, targets: list[str]) -> list[str]:
        """Read each target (the list grows with hard dependencies); report what changed."""
        i = 0
        while i < len(targets):
            name = targets[i]
            gated = self.fresh and name in self.names
            try:
                state = read_state(
                    self.portal, name, self.since.get(name, "now") if gated else None
                )
                if gated and name not in self.since:
                    if state.results_since is None:
                        raise Refused(
                            status=200,
                            code="no_gate",
                            message="this portal does not count fresh results only (?since=); "
                            "upgrade it, or wait with --any-result",
                        )
                    self.since[name] = state.results_since
            except Unreachable as exc:  # the portal restarting mid-deploy: keep waiting
                state = State(name, status="unreachable", reason=str(exc))
            previous = self.states.get(name)
            self.states[name] = state
            if previous is None or (previous.status, previous.usable) != (
                state.status,
                state.usable,
            ):
                self.report(state.line())
            if self.dependencies:
                targets += [d for d in state.hard_dependencies if d not in targets]
            i += 1
        return targets

    def summary(self, targets: list[str], elapsed: float) -> str:
        ready = sum(self.states[n].usable for n in targets)
        states = [self.states[n] for n in targets]
        waiting = ", ".join(f"{shown(s.name)} {shown(s.status)}" for s in states if not s.usable)
        return f"{elapsed:5.0f}s {ready}/{len(targets)} usable; waiting for {waiting}"

    def not_usable(self) -> list[State]:
        return [s for s in self.states.values() if not s.usable]

"""The seed's recovery procedures ("Service Recovery", "Configuration Recovery", "Health Check
Recovery") as runbooks, each step with the live facts a person needs beside it (pure: it
reads only what the page has already read).

Which procedures apply: none while the service is healthy (or in maintenance); service
recovery when it is down or degraded; configuration recovery when its current configuration
is invalid; health check recovery when a check cannot say anything (no result, a stale one,
a probe error, a target the policy refuses).

Worded for whoever reads it (``Reader``): a step that acts on the service (run the checks,
publish a configuration, change a check) points someone who may change the service to the
control they have, and anyone else -- a viewer, an operator of another team -- to the people
who may, named: the owning team's operators (or the portal's admins when it has none) and its
contact. Never to a button the reader does not have.
"""

from dataclasses import dataclass, field

CHECK_TROUBLE = ("probe error", "target not allowed", "no recent result")


@dataclass
class Step:
    text: str
    facts: list[str] = field(default_factory=list)
    ok: bool | None = None  # None: a step for a person, nothing to judge from data


@dataclass
class Procedure:
    title: str
    why: str
    steps: list[Step]


@dataclass(frozen=True)
class Reader:
    """Who reads the runbook: whether they may change the service here (run its checks,
    publish its configuration, change its checks), and, if not, whom to ask."""

    may_change: bool
    team: str = ""
    operators: tuple[str, ...] = ()  # the owning team's people who may change it
    admins: tuple[str, ...] = ()  # the portal's admins, named when the team has no operator
    contact: str = ""

    def ask(self) -> str:
        """Whom to ask, named: "ask an operator of the team payments (alice, carol; contact
        #payments)"."""
        contact = f"; contact {self.contact}" if self.contact else ""
        if self.operators:
            return f"ask an operator of the team {self.team} ({', '.join(self.operators)}{contact})"
        admins = f" ({', '.join(self.admins)})" if self.admins else ""
        return f"the team {self.team} has no operator here{contact}: ask a portal admin{admins}"


def _failing(detail: dict) -> list[str]:
    return [
        f"{c['name']} ({c['kind']}): {c['status']}"
        + (f" -- {'; '.join(c['errors'])}" if c["errors"] else "")
        for c in detail["checks"]
        if c["enabled"] and c["status"] != "healthy"
    ]


def _deps(neighbours: dict) -> tuple[list[str], bool]:
    """Fine only when every hard dependency is healthy: one degraded by its own upstream is
    where to look next."""
    rows = [f"{d['service']} ({d['kind']}): {d['status']}" for d in neighbours["dependencies"]]
    ok = all(d["status"] == "healthy" for d in neighbours["dependencies"] if d["kind"] == "hard")
    return rows or ["no dependencies"], ok


def _run_checks(reader: Reader, then: str = "") -> str:
    """How to run the checks now: the button, for whoever has it."""
    if reader.may_change:
        return f"Use \u201cRun checks now\u201d above{then}."
    return (
        "The checks run on their schedule and the results below follow; to run them now, "
        + reader.ask()
        + "."
    )


def service_recovery(detail: dict, neighbours: dict, runbook_url: str, reader: Reader) -> Procedure:
    failing = _failing(detail)
    deps, deps_ok = _deps(neighbours)
    impacted = [f"{i['service']} ({i['status']})" for i in neighbours["impact"] if i["changes"]]
    return Procedure(
        "Service recovery",
        f"the service is {detail['status']}: {detail['reason'] or 'no reason given'}",
        [
            Step(
                "Check service status and errors",
                [f"status: {detail['status']}", *(failing or ["every check is healthy"])],
                not failing,
            ),
            Step("Review service dependencies", deps, deps_ok),
            Step(
                "Restart service if needed",
                [
                    (
                        "Follow the service's runbook (linked above) or your platform's restart; "
                        if runbook_url
                        else "The service has no runbook link (set runbook_url): use your "
                        "platform's restart; "
                    )
                    + (
                        ""
                        if reader.may_change
                        else f"if it is not yours to restart, {reader.ask()}; "
                    )
                    + (
                        f"{len(impacted)} service(s) change status with it: "
                        + ", ".join(impacted[:10])
                        if impacted
                        else "no other service's status depends on it"
                    )
                ],
            ),
            Step(
                "Verify health check passes",
                [_run_checks(reader, "; the results replace the ones listed")],
                not failing,
            ),
            Step("Monitor for recurring issues", ["See the incidents and the timeline below."]),
        ],
    )


def configuration_recovery(config: dict, reader: Reader) -> Procedure:
    current = config["current"]
    issues = [f"{path}: {why}" for path, why in list(config["issues"].items())[:10]]
    validity = (
        "no configuration stored"
        if current is None
        else f"version {current.version}: "
        + {True: "valid", False: "invalid", None: "not validated"}[config["valid"]]
    )
    return Procedure(
        "Configuration recovery",
        validity,
        [
            Step("Check configuration validation", [validity, *issues], config["valid"] is True),
            Step(
                "Review environment variables",
                ["The configuration as a dotenv file: GET /api/services/<name>/config?format=env"],
            ),
            Step("Validate configuration schema", ["POST .../config/validate checks a candidate."]),
            Step(
                "Update configuration if needed",
                [
                    "Publish a new version (API, admin); rollback restores an earlier one."
                    if reader.may_change
                    else "Publishing a version or rolling back is for the service's operators: "
                    + reader.ask()
                    + ", and tell them what the validation above found."
                ],
            ),
            Step(
                "Restart affected services",
                [f"drift: {config['drift']['state']}"],
                config["drift"]["state"] != "drifting",
            ),
        ],
    )


def health_check_recovery(detail: dict, neighbours: dict, reader: Reader) -> Procedure:
    troubled = [
        f"{c['name']} ({c['kind']}): {'; '.join(c['errors']) or c['status']}"
        for c in detail["checks"]
        if _blind(c)
    ]
    deps, deps_ok = _deps(neighbours)
    return Procedure(
        "Health check recovery",
        "a check cannot observe the service",
        [
            Step("Check health check implementation", troubled, False),
            Step("Verify service dependencies", deps, deps_ok),
            Step(
                "Review health check configuration",
                [
                    f"{c['name']}: {c['kind']}, last result {c['last_check_at'] or 'never'}"
                    for c in detail["checks"]
                ],
            ),
            Step("Test health check manually", [_run_checks(reader)]),
            Step(
                "Update health check if needed",
                [
                    "In the admin or PUT .../checks/<check>."
                    if reader.may_change
                    else "Changing a check is for the service's operators: " + reader.ask() + "."
                ],
            ),
        ],
    )


def _blind(check: dict) -> bool:
    """A check that says nothing about the service: no result, a stale one, or its own
    failure (a probe error, a target the policy refuses)."""
    errors = " ".join(check["errors"])
    return check["enabled"] and (
        check["stale"] or check["status"] == "unknown" or any(t in errors for t in CHECK_TROUBLE)
    )


def procedures(
    detail: dict, config: dict, neighbours: dict, runbook_url: str, reader: Reader
) -> list[Procedure]:
    found = []
    if detail["status"] in ("unhealthy", "degraded"):
        found.append(service_recovery(detail, neighbours, runbook_url, reader))
    if config["current"] is not None and config["valid"] is False:
        found.append(configuration_recovery(config, reader))
    if any(_blind(c) for c in detail["checks"]):
        found.append(health_check_recovery(detail, neighbours, reader))
    return found

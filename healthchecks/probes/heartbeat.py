"""Heartbeat checks: the service (or a cron job) calls its check's URL
(healthchecks.web.pings); the probe judges, without any I/O, how long ago it last did."""

import time

from pydantic import BaseModel, ConfigDict, Field

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import Failure, Run
from healthchecks.status import ErrorCode
from portal.fields import Integer


class HeartbeatOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace: Integer = Field(0, ge=0, le=86_400, description="Extra seconds before a missed beat.")


def judge_heartbeat(run: Run) -> None:
    spec = run.spec
    grace = spec.options.get("grace", 0)
    if spec.last_ping_at is None:
        raise Failure(ErrorCode.NO_HEARTBEAT, "no heartbeat received yet")
    age = time.time() - spec.last_ping_at
    run.outcome.metrics["seconds_since_ping"] = round(age, 1)
    if age > spec.interval + grace:
        message = (
            f"no heartbeat for {age:.0f}s (expected every {spec.interval:g}s + {grace:g}s grace)"
        )
        raise Failure(ErrorCode.NO_HEARTBEAT, message)


KIND = Kind(
    name="heartbeat",
    label="Heartbeat (the service calls us)",
    probe=judge_heartbeat,
    options=HeartbeatOptions,
    pushed=True,
)

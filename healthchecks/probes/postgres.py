"""PostgreSQL checks: ``SELECT 1`` answers, on an address the network policy allowed (libpq
connects to ``hostaddr``), with the password kept apart from the target."""

import math

import psycopg
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from healthchecks.netpolicy import Endpoint, parse_postgres_dsn
from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import Failure, Run, clip, parse_target
from healthchecks.probes.prober import Prober
from healthchecks.status import ErrorCode

NO_PASSFILE = "/nonexistent/pgpass"  # libpq skips a missing file silently (/dev/null warns)


class PasswordOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: StrictStr = Field("", max_length=500, description="Kept encrypted.")


async def probe_postgres(prober: Prober, run: Run) -> None:
    spec = run.spec
    target = parse_target(parse_postgres_dsn, spec.target)
    endpoint = target.endpoint
    addresses = await prober.resolve(run, endpoint)
    run.stage = f"connecting to PostgreSQL at {endpoint}"
    parameters = {
        "application_name": "portal-healthcheck",
        **target.parameters,
        # libpq connects to hostaddr (checked) and uses host for TLS and messages only.
        "host": ",".join([endpoint.host] * len(addresses)),
        "hostaddr": ",".join(addresses),
        "port": str(endpoint.port),
        "password": spec.secrets.get("password", ""),
        "passfile": NO_PASSFILE,  # never the worker's own saved passwords
        "connect_timeout": str(max(2, math.ceil(spec.timeout))),
    }
    try:
        conn = await psycopg.AsyncConnection.connect(autocommit=True, **parameters)
    except psycopg.Error as exc:
        raise _postgres_failure(exc, endpoint) from None
    try:
        run.stage = f"running SELECT 1 on {endpoint}"
        await conn.execute("SELECT 1")
        run.outcome.metrics["server_version"] = conn.info.parameter_status("server_version")
    except psycopg.Error as exc:
        raise _postgres_failure(exc, endpoint) from None
    finally:
        await conn.close()


def _postgres_failure(exc: Exception, endpoint: Endpoint) -> Failure:
    text = clip(str(exc), 1000)
    if "Connection refused" in text:
        return Failure(ErrorCode.REFUSED, f"connection refused by {endpoint}")
    if "timeout expired" in text:
        return Failure(ErrorCode.TIMEOUT, f"PostgreSQL at {endpoint}: connection timed out")
    if "FATAL:" in text:
        reason = text.split("FATAL:", 1)[1].strip()
        return Failure(ErrorCode.REPORTED, f"PostgreSQL at {endpoint}: {clip(reason)}")
    reason = text.removeprefix("connection failed: ")
    return Failure(ErrorCode.CONNECTION, f"PostgreSQL at {endpoint}: {clip(reason)}")


def postgres_endpoint(target: str) -> Endpoint:
    return parse_postgres_dsn(target).endpoint


KIND = Kind(
    name="postgres",
    label="PostgreSQL (SELECT 1)",
    probe=probe_postgres,
    options=PasswordOption,
    secrets=("password",),
    endpoint=postgres_endpoint,
)

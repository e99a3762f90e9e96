"""PostgreSQL checks: ``SELECT 1`` answers, on an address the network policy allowed (libpq
connects to ``hostaddr``), with the password kept apart from the target."""

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import Failure, Run, clip, parse_target
from healthchecks.probes.prober import Prober
from healthchecks.status import ErrorCode
from portal.egress import Endpoint, TargetError, check_host_syntax, check_port

NO_PASSFILE = "/nonexistent/pgpass"  # libpq skips a missing file silently (/dev/null warns)
# DSN parameters a check may set. Others are refused: ``service``/``servicefile`` could point
# libpq at another host, ``hostaddr`` would bypass the resolved address, files read local keys.
POSTGRES_PARAMETERS = frozenset(
    {
        "host",
        "port",
        "dbname",
        "user",
        "sslmode",
        "application_name",
        "target_session_attrs",
        "channel_binding",
        "require_auth",
        "gssencmode",
    }
)
PASSWORD_ADVICE = "put the password in the password field; it is stored encrypted"  # noqa: S105


@dataclass(frozen=True)
class PostgresTarget:
    endpoint: Endpoint
    parameters: dict[str, str]  # the DSN's other parameters (dbname, user, sslmode, ...)


def parse_postgres_dsn(target: str) -> PostgresTarget:
    """A DSN without password: ``postgresql://user@host:port/db`` (or ``key=value`` form)."""
    text = target.strip()
    if _has_password(text):
        raise TargetError(PASSWORD_ADVICE)
    try:
        parameters = {k: str(v) for k, v in conninfo_to_dict(text).items()}
    except ProgrammingError as exc:
        raise TargetError(f"not a valid PostgreSQL DSN ({_one_line(str(exc))})") from None
    unknown = sorted(set(parameters) - POSTGRES_PARAMETERS)
    if unknown:
        raise TargetError(f"DSN parameter {unknown[0]!r} is not allowed in a check")
    host = parameters.pop("host", "")
    if not host:
        raise TargetError("the DSN must name a host: postgresql://user@host:5432/db")
    if host.startswith("/") or host.startswith("@"):
        raise TargetError("Unix sockets are not allowed; name a host or an address")
    if "," in host:
        raise TargetError("name one host")
    port_text = parameters.pop("port", "5432")
    if not port_text.isdigit():
        raise TargetError(f"port {port_text!r} is not a number")
    check_host_syntax(host)
    check_port(int(port_text))
    return PostgresTarget(Endpoint(host, int(port_text)), parameters)


def _has_password(dsn: str) -> bool:
    if "password" in dsn.lower():
        return True
    try:
        return urlsplit(dsn).password is not None
    except ValueError:
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


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

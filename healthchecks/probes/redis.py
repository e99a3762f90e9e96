"""Redis checks: a raw RESP exchange (AUTH, SELECT, PING, INFO server) on an allowed address --
cheaper than a client library, and it connects exactly where the policy allowed."""

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import Failure, Run, clip, describe, parse_target
from healthchecks.probes.postgres import PASSWORD_ADVICE, PasswordOption
from healthchecks.probes.prober import Prober, connect_failure, tls_context
from healthchecks.status import ErrorCode
from portal.egress import Endpoint, TargetError, check_host_syntax, check_port

MAX_REDIS_REPLY = 1 << 20
REDIS_SCHEMES = {"redis": False, "rediss": True}  # scheme -> TLS


@dataclass(frozen=True)
class RedisTarget:
    endpoint: Endpoint
    db: int = 0
    username: str = ""


def parse_redis_url(target: str) -> RedisTarget:
    """``redis://[user@]host[:port][/db]``, or ``rediss://`` for TLS."""
    parts = urlsplit(target.strip())
    if parts.scheme not in REDIS_SCHEMES:
        raise TargetError(f"the scheme must be redis or rediss, not {parts.scheme or 'none'!r}")
    if parts.password is not None:
        raise TargetError(PASSWORD_ADVICE)
    if parts.query or parts.fragment:
        raise TargetError("query parameters are not supported in a Redis URL")
    try:
        port = parts.port or 6379
    except ValueError:
        raise TargetError("the port is not a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not host:
        raise TargetError("the URL has no host: redis://host:6379/0")
    db_text = parts.path.strip("/") or "0"
    if not db_text.isdigit():
        raise TargetError(f"the database {db_text!r} is not a number: redis://host:6379/0")
    check_host_syntax(host)
    check_port(port)
    endpoint = Endpoint(host, port, tls=REDIS_SCHEMES[parts.scheme])
    return RedisTarget(endpoint, int(db_text), parts.username or "")


async def probe_redis(prober: Prober, run: Run) -> None:
    spec = run.spec
    target = parse_target(parse_redis_url, spec.target)
    endpoint = target.endpoint
    sock = await prober.connect(run, endpoint)
    tls = tls_context(verify=True) if endpoint.tls else None
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=endpoint.host if tls else None
        )
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise connect_failure(exc, str(endpoint)) from None
    try:
        run.stage = f"waiting for Redis at {endpoint}"
        commands = _redis_commands(target.username, spec.secrets.get("password", ""), target.db)
        writer.write(b"".join(_resp_command(*command) for command in commands))
        replies = [await _read_resp(reader, endpoint) for _ in commands]
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        message = f"Redis at {endpoint} broke off the exchange: {describe(exc)}"
        raise Failure(ErrorCode.CONNECTION, message) from None
    finally:
        writer.close()
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, _RedisError):
            message = f"Redis at {endpoint} answered {command[0]} with: {clip(str(reply))}"
            raise Failure(ErrorCode.REPORTED, message)
    version = _redis_version(replies[-1])
    if version:
        run.outcome.metrics["redis_version"] = version


class _RedisError(str):
    """An error reply (``-ERR ...``)."""


def _redis_commands(username: str, password: str, db: int) -> list[tuple[str, ...]]:
    commands: list[tuple[str, ...]] = []
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        commands.append(("SELECT", str(db)))
    commands += [("PING",), ("INFO", "server")]
    return commands


def _resp_command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return b"".join([b"*%d\r\n" % len(encoded), *(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)])


async def _read_resp(reader: asyncio.StreamReader, endpoint: Endpoint) -> Any:
    """One reply: simple string, error, integer or bulk string (all a probe needs)."""
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise ValueError("connection closed")
    kind, value = line[:1], line[1:-2]
    if kind == b"+":
        return value.decode(errors="replace")
    if kind == b"-":
        return _RedisError(value.decode(errors="replace"))
    if kind == b":":
        return int(value)
    if kind == b"$":
        length = int(value)
        if length < 0:
            return None
        if length > MAX_REDIS_REPLY:
            raise ValueError(f"a reply of {length} bytes")
        return (await reader.readexactly(length + 2))[:-2].decode(errors="replace")
    raise Failure(ErrorCode.CONNECTION, f"{endpoint} does not speak Redis (reply {line[:20]!r})")


def _redis_version(info: Any) -> str | None:
    if not isinstance(info, str) or isinstance(info, _RedisError):
        return None
    match = re.search(r"^redis_version:(\S+)", info, re.MULTILINE)
    return match.group(1) if match else None


def redis_endpoint(target: str) -> Endpoint:
    return parse_redis_url(target).endpoint


KIND = Kind(
    name="redis",
    label="Redis (PING)",
    probe=probe_redis,
    options=PasswordOption,
    secrets=("password",),
    endpoint=redis_endpoint,
)

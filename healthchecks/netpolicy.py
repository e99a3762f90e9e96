"""Where health checks may connect: the network policy, and how check targets are read.

A health checker connects wherever its users point it, so it is an SSRF engine by design. The
policy is enforced at connect time, *after* DNS resolution: ``NetworkPolicy.resolve`` looks the
name up itself, checks every address, and returns only allowed ones, which the probes then
connect to -- so a name cannot resolve to an allowed address when checked and to a forbidden
one when connected (DNS rebinding). ``endpoint_refusal`` is the static half, for refusing a bad
check definition before it is stored.

Always refused, whatever the settings say: link-local addresses (169.254.0.0/16 holds the cloud
metadata service 169.254.169.254; fe80::/10), the other clouds' metadata and platform addresses
(AWS fd00:ec2::254, Alibaba 100.100.100.200, Azure 168.63.129.16), NAT64 local-use prefixes
(64:ff9b:1::/48, whose IPv4 mapping the portal cannot know), the unspecified addresses
(0.0.0.0/8, ::), broadcast and multicast. IPv4 addresses wrapped in IPv6 -- mapped
(::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:aabb:ccdd::) and
Teredo -- are unwrapped and the rules applied to the IPv4 inside. Host names are read without
a trailing dot, so "169.254.169.254." is the address it spells.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from django.core.exceptions import ImproperlyConfigured
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("169.254.0.0/16", "link-local/metadata"),
        ("fe80::/10", "link-local"),
        ("fd00:ec2::254/128", "cloud metadata (AWS)"),
        ("100.100.100.200/32", "cloud metadata (Alibaba Cloud)"),
        ("168.63.129.16/32", "a cloud platform address (Azure)"),
        ("64:ff9b:1::/48", "NAT64 local-use (its IPv4 mapping is unknown)"),
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
        ("255.255.255.255/32", "broadcast"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv4-compatible (deprecated, RFC 4291): ::a.b.c.d; "::" and "::1" are not among them.
_COMPATIBLE = ipaddress.ip_network("::/96")

HTTP_SCHEMES = ("http", "https")
REDIS_SCHEMES = {"redis": False, "rediss": True}  # scheme -> TLS
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
_HOSTNAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,252})", re.IGNORECASE)


class TargetError(ValueError):
    """A target that cannot be read (malformed); ``str()`` says why."""


class PolicyError(Exception):
    """A target the policy refuses; ``str()`` names the rule that refused it."""


class ResolveError(Exception):
    """A host name that does not resolve."""


@dataclass(frozen=True)
class Endpoint:
    """Where a probe connects: a host (name or address, no brackets) and a port."""

    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


@dataclass(frozen=True)
class PostgresTarget:
    endpoint: Endpoint
    parameters: dict[str, str]  # the DSN's other parameters (dbname, user, sslmode, ...)


@dataclass(frozen=True)
class RedisTarget:
    endpoint: Endpoint
    db: int = 0
    username: str = ""


# --- The policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkPolicy:
    """Rules on addresses, ports and host names. Empty "allowed" lists allow everything;
    "denied" always wins. Private networks and loopback are allowed unless denied."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    denied_networks: tuple[IPNetwork, ...] = ()
    allowed_ports: tuple[range, ...] = ()
    denied_ports: tuple[range, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    denied_hosts: tuple[str, ...] = ()
    # Verdicts already reached, by (host, port) or address: a worker probes the same few
    # hundred targets over and over, and these checks are per-probe CPU.
    _memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def from_settings(cls, source: Any = None) -> NetworkPolicy:
        """The policy of ``settings.HEALTH_*`` (or of any object with those attributes)."""
        if source is None:
            from django.conf import settings as source
        return cls(
            allowed_networks=_networks(source, "HEALTH_ALLOWED_NETWORKS"),
            denied_networks=_networks(source, "HEALTH_DENIED_NETWORKS"),
            allowed_ports=_ports(source, "HEALTH_ALLOWED_PORTS"),
            denied_ports=_ports(source, "HEALTH_DENIED_PORTS"),
            allowed_hosts=_patterns(source, "HEALTH_ALLOWED_HOSTS"),
            denied_hosts=_patterns(source, "HEALTH_DENIED_HOSTS"),
        )

    # Each *_refusal returns the reason the policy refuses, or None.

    def address_refusal(self, address: IPAddress | str) -> str | None:
        key = str(address)
        if key not in self._memo:
            self._remember(key, self._address_refusal(ipaddress.ip_address(address)))
        return self._memo[key]

    def _address_refusal(self, address: IPAddress) -> str | None:
        for network, why in ALWAYS_REFUSED:  # the address as written (NAT64 local-use)
            if address in network:
                return f"{address} is {why}: always refused"
        shown = str(address)
        inner = unwrap_ipv4(address)
        if inner is not address:
            shown = f"{inner} (as {address})"
            address = inner
        for network, why in ALWAYS_REFUSED:
            if address in network:
                return f"{shown} is {why}: always refused"
        for network in self.denied_networks:
            if address in network:
                return f"{shown} is in {network}, denied by HEALTH_DENIED_NETWORKS"
        if self.allowed_networks and not any(address in n for n in self.allowed_networks):
            return f"{shown} is not in HEALTH_ALLOWED_NETWORKS"
        return None

    def port_refusal(self, port: int) -> str | None:
        if any(port in r for r in self.denied_ports):
            return f"port {port} is denied by HEALTH_DENIED_PORTS"
        if self.allowed_ports and not any(port in r for r in self.allowed_ports):
            return f"port {port} is not in HEALTH_ALLOWED_PORTS"
        return None

    def host_refusal(self, host: str) -> str | None:
        """Host-name patterns, and the address rules when the host is an address literal."""
        name = host.lower().rstrip(".")
        for pattern in self.denied_hosts:
            if fnmatch.fnmatchcase(name, pattern):
                return f"host {name} is denied by HEALTH_DENIED_HOSTS ({pattern!r})"
        if self.allowed_hosts and not any(fnmatch.fnmatchcase(name, p) for p in self.allowed_hosts):
            return f"host {name} is not in HEALTH_ALLOWED_HOSTS"
        literal = ip_literal(name)
        return self.address_refusal(literal) if literal is not None else None

    def endpoint_refusal(self, host: str, port: int) -> str | None:
        """Everything decidable without DNS."""
        key = (host, port)
        if key not in self._memo:
            self._remember(key, self.host_refusal(host) or self.port_refusal(port))
        return self._memo[key]

    def _remember(self, key: object, reason: str | None) -> None:
        if len(self._memo) >= 50_000:
            self._memo.clear()
        self._memo[key] = reason

    def check(self, host: str, port: int) -> None:
        reason = self.endpoint_refusal(host, port)
        if reason:
            raise PolicyError(reason)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The allowed addresses of ``host``, in resolver order: connect only to these.

        Raises PolicyError when the host, the port or every address is refused, and
        ResolveError when the name does not resolve."""
        self.check(host, port)
        if ip_literal(host) is not None:
            return [host]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
            )
        except socket.gaierror as exc:
            raise ResolveError(f"{host} does not resolve ({exc.strerror})") from None
        allowed: list[str] = []
        refused: list[str] = []
        for *_, sockaddr in infos:
            address = sockaddr[0]
            if address in allowed:
                continue
            reason = self.address_refusal(address)
            if reason:
                refused.append(reason)
            else:
                allowed.append(address)
        if not allowed:
            if not refused:
                raise ResolveError(f"{host} has no usable address")
            raise PolicyError(f"{host} resolves only to refused addresses: {refused[0]}")
        return allowed


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver, through the policy: a name resolves only to allowed addresses.

    aiohttp does not call a resolver for address literals: the prober checks those itself
    (``NetworkPolicy.check``) before each request."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.policy.resolve(host, port)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


# --- Addresses --------------------------------------------------------------------------------


def unwrap_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo's
    client), else the address: traffic to it ends up at that IPv4 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return address


@functools.lru_cache(maxsize=4096)
def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def format_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- Reading targets --------------------------------------------------------------------------


def parse_http_url(target: str) -> URL:
    try:
        url = URL(target.strip())
    except (ValueError, TypeError) as exc:
        raise TargetError(f"not a valid URL ({exc})") from None
    if url.scheme not in HTTP_SCHEMES:
        raise TargetError(f"the scheme must be http or https, not {url.scheme or 'none'!r}")
    if url.user is not None or url.password is not None:
        raise TargetError("credentials in the URL are not allowed; send them in a header")
    check_url_endpoint(url)
    return url


def check_url_endpoint(url: URL) -> None:
    """A URL's host and port are well formed (for the first URL and every redirect)."""
    if not url.raw_host:
        raise TargetError("the URL has no host")
    check_host_syntax(url.raw_host)
    check_port(url.port)


def parse_host_port(target: str) -> Endpoint:
    """``host:port``, with an IPv6 address in brackets: ``[::1]:5432``."""
    text = target.strip()
    bracketed = re.fullmatch(r"\[([^\]]+)\]:(\d+)", text)
    if bracketed:
        host, port_text = bracketed.groups()
        if ip_literal(host) is None:
            raise TargetError(f"{host!r} in brackets is not an IPv6 address")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise TargetError("expected host:port, e.g. db.internal:5432 or [::1]:5432")
        if ":" in host:
            raise TargetError("put an IPv6 address in brackets: [::1]:5432")
    if not port_text.isdigit():
        raise TargetError(f"port {port_text!r} is not a number")
    port = int(port_text)
    check_host_syntax(host)
    check_port(port)
    return Endpoint(host, port)


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


def check_host_syntax(host: str) -> None:
    problem = _host_syntax_problem(host)
    if problem:
        raise TargetError(problem)


@functools.lru_cache(maxsize=4096)
def _host_syntax_problem(host: str) -> str | None:
    if ip_literal(host) is not None or ip_literal(host.removesuffix(".")) is not None:
        return None  # an address (a trailing dot changes nothing): the policy judges it
    if not _HOSTNAME.fullmatch(host):
        return f"{host!r} is not a valid host name"
    try:
        legacy = socket.inet_aton(host.removesuffix("."))
    except OSError:
        return None
    # 127.1, 2130706433, 0x7f.0.0.1: the C library reads them as addresses; refuse the
    # ambiguity rather than guess what the rules should see.
    return f"{host!r} is not a canonical address; write {socket.inet_ntoa(legacy)}"


def check_port(port: int | None) -> None:
    if port is None or not 1 <= port <= 65535:
        raise TargetError("the port must be from 1 to 65535")


def _has_password(dsn: str) -> bool:
    if "password" in dsn.lower():
        return True
    try:
        return urlsplit(dsn).password is not None
    except ValueError:
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- Settings ---------------------------------------------------------------------------------


def _setting(source: Any, name: str) -> list[str]:
    return [str(item).strip() for item in getattr(source, name, None) or () if str(item).strip()]


def _networks(source: Any, name: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in _setting(source, name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a network (CIDR)") from None
    return tuple(networks)


def _ports(source: Any, name: str) -> tuple[range, ...]:
    ranges = []
    for item in _setting(source, name):
        low, _, high = item.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a port or a range") from None
        if not 1 <= first <= last <= 65535:
            raise ImproperlyConfigured(f"{name}: {item!r} is not within 1-65535")
        ranges.append(range(first, last + 1))
    return tuple(ranges)


def _patterns(source: Any, name: str) -> tuple[str, ...]:
    return tuple(item.lower().rstrip(".") for item in _setting(source, name))

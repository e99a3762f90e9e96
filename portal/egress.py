"""The egress guard: where the portal may connect -- health checks, notification channels and
rule webhooks alike -- judged on the address it really connects to, after resolution.

A health checker connects wherever its users point it, so it is an SSRF engine by design, and
so are notifications and webhooks. The policy is enforced at connect time, *after* DNS
resolution, and the connection goes to the address judged, never to a second answer of the
resolver (DNS rebinding):

- the probes resolve through ``NetworkPolicy.resolve`` (aiohttp's ``PolicyResolver``, libpq's
  ``hostaddr``, the Redis and TCP probes' own connections): every address judged, only the
  allowed ones connected to;
- synchronous clients (apprise's notifiers, urllib for webhooks) connect inside ``guard()``:
  in that thread every name resolution goes through the policy once per host and port, its
  allowed answers pinned for the rest of the block, so the client's own lookups get exactly
  what was judged -- whatever library makes them.

``endpoint_refusal`` is the static half, for refusing a bad definition before it is stored.

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
import contextlib
import fnmatch
import functools
import ipaddress
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from django.core.exceptions import ImproperlyConfigured
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
        try:
            return self._memo[key]
        except KeyError:
            return self._remember(key, self._address_refusal(ipaddress.ip_address(address)))

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
        try:
            return self._memo[key]
        except KeyError:
            return self._remember(key, self.host_refusal(host) or self.port_refusal(port))

    def _remember(self, key: object, reason: str | None) -> str | None:
        """Keeps a verdict (the memo starts again past 50,000) and returns it: read back from
        the memo, another thread's clear in between would lose it."""
        if len(self._memo) >= 50_000:
            self._memo.clear()
        self._memo[key] = reason
        return reason

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
            address = str(sockaddr[0])
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


# --- The guard for synchronous clients --------------------------------------------------------

_RESOLVE = socket.getaddrinfo  # the resolver itself, which the guard wraps
_CURRENT = threading.local()


def _key(host: str, port: int) -> tuple[str, int]:
    """A place as the resolver sees it: lower case, no trailing dot or brackets, and an
    internationalised name in its ASCII form (the URL libraries write xn--bcher-kva.test,
    urllib and smtplib look up bücher.test: one place, as Python's resolver encodes it)."""
    name = host.lower().rstrip(".").strip("[]")
    if not name.isascii():
        # Not a name the resolver can encode either (it fails there): kept as written.
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii")
    return name, int(port)


class _Refusal(str):
    """A lookup the policy refused: the message the client's error carries, and the reason."""

    reason: str

    def __new__(cls, reason: str) -> _Refusal:
        refusal = super().__new__(cls, f"refused by the network policy: {reason}")
        refusal.reason = reason
        return refusal


@dataclass
class Guarded:
    """One guarded block: where its clients asked to connect (in order), the answers the policy
    allowed (pinned: a second lookup of the same host and port gets the same answers, never a
    new resolution), and why anything was refused. A block inside another (``outer``) only
    narrows it: its lookups are the outer block's, pinned there and judged by both."""

    policy: NetworkPolicy
    only: frozenset[tuple[str, int]] | None = None
    trusted: frozenset[tuple[str, int]] = frozenset()
    reached: list[tuple[str, int]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    outer: Guarded | None = None
    _answers: dict = field(default_factory=dict)

    def lookup(self, host, port, family=0, type=0, proto=0, flags=0) -> list:
        answer = self._answer((host, port, family, type, proto, flags))
        if isinstance(answer, str):
            raise socket.gaierror(socket.EAI_NONAME, answer)
        return answer

    def _answer(self, query: tuple) -> list | str:
        """The pinned answer to ``query`` (getaddrinfo's arguments): the allowed address
        infos, or why there are none (a _Refusal when the policy refused)."""
        host, port, *rest = query
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        number = port if isinstance(port, int) else _port_number(port)
        key = _key(name, number)
        if key not in self._answers:
            self.reached.append(key)
            self._answers[key] = self._judge(key, (name, port, *rest))
        return self._answers[key]

    def _judge(self, key: tuple[str, int], query: tuple) -> list | str:
        name, number = key
        shown = format_host_port(name, number)
        if self.only is not None and key not in self.only:
            places = ", ".join(format_host_port(*k) for k in sorted(self.only))
            return self._refuse(f"{shown} is not where this connects ({places})")
        trusted = key in self.trusted  # a vendor's fixed address: only the always-refused
        policy = _ALWAYS if trusted else self.policy
        if reason := policy.endpoint_refusal(name, number):
            return self._refuse(reason)
        if self.outer is not None:  # what the enclosing block allows, as it pinned it
            enclosing = self.outer._answer(query)
            if isinstance(enclosing, _Refusal):
                return self._refuse(enclosing.reason)
            if isinstance(enclosing, str):
                return enclosing
            infos = enclosing
        else:
            try:
                infos = _RESOLVE(*query)
            except socket.gaierror as exc:
                return f"{name} does not resolve ({exc.strerror})"
        allowed: list[tuple] = []
        refused: list[str] = []
        for info in infos:
            reason = policy.address_refusal(str(info[4][0]))
            if reason:
                refused.append(reason)
            else:
                allowed.append(info)
        if not allowed:
            return self._refuse(f"{name} resolves only to refused addresses: {refused[0]}")
        return allowed

    def _refuse(self, reason: str) -> _Refusal:
        self.refused.append(reason)
        return _Refusal(reason)


_ALWAYS = NetworkPolicy()  # no settings: refuses the always-refused addresses only


def _port_number(port) -> int:
    if port is None:
        return 0
    text = port.decode() if isinstance(port, bytes) else str(port)
    return int(text) if text.isdigit() else socket.getservbyname(text)


def _guarded_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    current = getattr(_CURRENT, "guarded", None)
    if current is None:
        return _RESOLVE(host, port, family, type, proto, flags)
    return current.lookup(host, port, family, type, proto, flags)


@contextmanager
def guard(
    policy: NetworkPolicy | None = None,
    *,
    only: Iterable[tuple[str, int]] | None = None,
    trusted: Iterable[tuple[str, int]] = (),
) -> Iterator[Guarded]:
    """Connections made in this thread inside the block go through the policy: every name
    (and address literal) a client resolves is judged once, its allowed answers pinned.
    ``only``: the host-and-port pairs the block may reach at all (a notifier connecting
    anywhere else than its scheme declares is refused); ``trusted``: pairs reached without
    the allowed/denied settings (a vendor's fixed address), the always-refused still
    refused. A block inside another narrows it, never widens it: the enclosing block's
    ``only``, policy and pinned answers still hold. Python's resolver is wrapped once, on
    first use; outside a block it answers as it always did."""
    socket.getaddrinfo = _guarded_getaddrinfo
    previous = getattr(_CURRENT, "guarded", None)
    current = Guarded(
        policy or NetworkPolicy.from_settings(),
        frozenset(_key(*pair) for pair in only) if only is not None else None,
        frozenset(_key(*pair) for pair in trusted),
        outer=previous,
    )
    _CURRENT.guarded = current
    try:
        yield current
    finally:
        _CURRENT.guarded = previous

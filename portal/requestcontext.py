"""Per-request facts that code far from the view needs: the request id and the client address.

Set by ``portal.middleware.RequestContextMiddleware``; read by the audit log, the security
events and structlog (the request id is bound as a structlog context variable too). Outside a
request (Celery tasks, management commands) both are empty. The client address is the one the
rate limiter counts by (``client_address``): behind a trusted proxy, the client's, not the
proxy's.
"""

import functools
import ipaddress
import re
import uuid
from contextvars import ContextVar
from ipaddress import IPv4Network, IPv6Network

from django.conf import settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="")

IPNetwork = IPv4Network | IPv6Network

# Accept a caller's id only if it is short and plain, so it cannot forge log lines.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def choose_request_id(incoming: str | None) -> str:
    if incoming and _REQUEST_ID_RE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


def current_client_ip() -> str:
    return client_ip_var.get()


def client_address(meta: dict) -> str:
    """The peer, or the address the trusted proxy says it forwarded for (the rightmost
    address not itself a trusted proxy: the leftmost can be forged by the client). A hop that
    is no address (a proxy passing on what the client wrote) is not believed: the peer then."""
    peer = meta.get("REMOTE_ADDR", "")
    trusted = trusted_networks(tuple(settings.TRUSTED_PROXIES))
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if not forwarded or not is_trusted(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if is_trusted(hop, trusted):
            continue
        return _address(hop) or peer
    return peer


@functools.lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES as networks (an address is a network of one); settings.py checked
    each entry, so nothing here is refused."""
    return tuple(_unmapped(ipaddress.ip_network(entry, strict=False)) for entry in entries)


def _unmapped(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped network (``::ffff:10.244.0.0/112``: how a dual-stack socket, hence the
    access log, shows an IPv4 proxy) is the IPv4 network it maps, as its peers are (is_trusted);
    kept as IPv6 it would match no peer at all."""
    mapped = network.network_address.ipv4_mapped if network.version == 6 else None
    if mapped is None or network.prefixlen < 96:
        return network
    return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")


def is_trusted(hop: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Is ``hop`` (a peer or an X-Forwarded-For entry) an address within a trusted network?
    An IPv4 address seen as IPv6 (``::ffff:10.0.0.1``, a dual-stack socket) is itself."""
    text = _address(hop)
    if text is None:
        return False
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _address(hop: str) -> str | None:
    """An X-Forwarded-For entry as an address ("[::1]:80" and "1.2.3.4:80" lose the port)."""
    if hop.startswith("[") and "]" in hop:
        hop = hop[1 : hop.index("]")]
    elif hop.count(":") == 1:
        hop = hop.split(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None

"""TRUSTED_PROXIES takes networks (CIDR) as well as addresses (issue 23): an ingress
controller's pods move within the pod network, so an address written down today is another
pod's tomorrow. A peer inside a trusted network has its X-Forwarded-For believed (the
rightmost hop that is not itself inside one is the client); a peer outside every one is the
client itself. Entries are checked when the settings load: what is no address or network, or
a network with host bits set, stops the process naming it."""

import ipaddress
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from portal import env
from portal.requestcontext import client_address

ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@st.composite
def networks(draw):
    address = draw(st.one_of(ipv4, ipv6))
    prefix = draw(st.integers(0, address.max_prefixlen))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@given(network=networks(), peer=st.one_of(ipv4, ipv6), client=ipv4)
def test_a_peer_inside_a_trusted_network_is_believed_and_one_outside_is_not(network, peer, client):
    meta = {"REMOTE_ADDR": str(peer), "HTTP_X_FORWARDED_FOR": f"{client}"}
    entries = [str(network)]
    previous = settings.TRUSTED_PROXIES
    settings.TRUSTED_PROXIES = entries
    try:
        seen = client_address(meta)
    finally:
        settings.TRUSTED_PROXIES = previous
    if peer in network and client not in network:
        assert seen == str(client)
    elif peer not in network:
        assert seen == str(peer)


def test_the_rightmost_hop_outside_the_trusted_networks_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.244.0.0/16", "192.0.2.7"]
    meta = {
        "REMOTE_ADDR": "10.244.3.9",  # the ingress controller's pod, wherever it moved
        "HTTP_X_FORWARDED_FOR": "203.0.113.50, 198.51.100.4, 192.0.2.7, 10.244.1.2",
    }
    assert client_address(meta) == "198.51.100.4"  # the client's own first entry is forgeable
    assert client_address({**meta, "REMOTE_ADDR": "10.245.0.1"}) == "10.245.0.1"
    # A dual-stack socket reports an IPv4 peer as IPv6: the same address.
    assert client_address({**meta, "REMOTE_ADDR": "::ffff:10.244.3.9"}) == "198.51.100.4"


@given(prefix=st.integers(0, 32), proxy=ipv4, client=ipv4)
def test_a_network_written_ipv4_mapped_trusts_its_peers_in_either_form(prefix, proxy, client):
    """An operator copying the proxy's address from a dual-stack server's log writes it as
    ``::ffff:10.244.3.9`` (or the network as ``::ffff:10.244.0.0/112``): the same proxy, whether
    the peer is then seen as IPv4 or IPv4-mapped -- not an entry that matches no one."""
    network = ipaddress.ip_network(f"{proxy}/{prefix}", strict=False)
    mapped = f"::ffff:{network.network_address}/{96 + prefix}"
    previous = settings.TRUSTED_PROXIES
    settings.TRUSTED_PROXIES = [str(ipaddress.ip_network(mapped))]
    try:
        for peer in (str(proxy), f"::ffff:{proxy}"):
            seen = client_address({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": str(client)})
            assert seen == (peer if client in network else str(client)), (mapped, peer)
    finally:
        settings.TRUSTED_PROXIES = previous


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.10", ["10.0.0.10/32"]),
        (" 10.244.0.0/16 , fd00::/8,::1 ", ["10.244.0.0/16", "fd00::/8", "::1/128"]),
        ("", []),
    ],
)
def test_addresses_and_networks_are_read_canonically(monkeypatch, value, expected):
    monkeypatch.setenv("TRUSTED_PROXIES", value)
    assert env.env_networks("TRUSTED_PROXIES") == expected


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/33", "proxy.internal", "10.0.0.*"])
def test_what_is_no_network_is_refused_naming_it(monkeypatch, value):
    monkeypatch.setenv("TRUSTED_PROXIES", f"10.0.0.10,{value}")
    with pytest.raises(ImproperlyConfigured, match=rf"TRUSTED_PROXIES: '{value}' is not"):
        env.env_networks("TRUSTED_PROXIES")


def test_a_bad_entry_stops_the_portal_at_start():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "PORTAL_ENV_FILE": "", "TRUSTED_PROXIES": "10.0.0.1/8"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: '10.0.0.1/8' is not an address or a network" in result.stderr

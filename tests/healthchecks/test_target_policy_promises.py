"""The README's "Where checks may point", as properties over the API a user defines checks
with: an address in the always-refused list is refused whatever the settings allow, however
it is spelled (plain, or an IPv4 address wrapped in IPv6: mapped, compatible, NAT64, 6to4,
Teredo); and a wrapped IPv4 address is judged as the IPv4 address inside it."""

import ipaddress

import pytest
from django.test import override_settings
from hypothesis import HealthCheck as Suppress
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.models import HealthCheck
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

# As the README lists them.
ALWAYS_REFUSED = [
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "168.63.129.16/32",
    "64:ff9b:1::/48",
    "0.0.0.0/32",
    "::/128",
    "224.0.0.0/4",
    "ff00::/8",
    "255.255.255.255/32",
]
EVERYTHING = ["0.0.0.0/0", "::/0"]
NAT64 = int(ipaddress.IPv6Address("64:ff9b::"))


def address_in(cidr: str) -> st.SearchStrategy:
    network = ipaddress.ip_network(cidr)
    return st.integers(min_value=0, max_value=network.num_addresses - 1).map(lambda i: network[i])


def wrapped(inner: ipaddress.IPv4Address, how: str) -> ipaddress.IPv6Address:
    """``inner`` carried in an IPv6 address, as each transition mechanism spells it."""
    value = int(inner)
    return ipaddress.IPv6Address(
        {
            "mapped": (0xFFFF << 32) | value,
            "compatible": value,
            "nat64": NAT64 | value,
            "6to4": (0x2002 << 112) | (value << 80) | 1,
            "teredo": (0x20010000 << 96)
            | (0x41366E78 << 64)
            | (0x8000 << 48)
            | (0x63BF << 32)
            | (~value & 0xFFFFFFFF),
        }[how]
    )


SPELLINGS = ["mapped", "compatible", "nat64", "6to4", "teredo"]
ipv4 = st.integers(min_value=2, max_value=2**32 - 1).map(ipaddress.IPv4Address)


def url(address) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:8080/health"


@pytest.fixture
def ops(make_token):
    ServiceFactory(name="payments")
    return ApiClient(make_token(["registry:read", "registry:write", "health:write"]).secret)


def save(ops, address) -> tuple[int, str]:
    HealthCheck.objects.all().delete()
    answer = ops.call(
        "PUT", "/api/services/payments/checks/c", {"kind": "http", "target": url(address)}
    )
    reason = answer.json().get("error", {}).get("fields", {}).get("target", "")
    return answer.status_code, reason


@hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[Suppress.function_scoped_fixture]
)
@given(
    data=st.data(), cidr=st.sampled_from(ALWAYS_REFUSED), how=st.sampled_from(["plain", *SPELLINGS])
)
def test_an_always_refused_address_is_refused_whatever_the_settings_and_spelling(
    ops, data, cidr, how
):
    address = data.draw(address_in(cidr))
    if how != "plain":
        if address.version == 6 or (how == "compatible" and int(address) <= 1):
            return  # only an IPv4 address is wrapped; ::0 and ::1 are IPv6's own
        address = wrapped(address, how)
    with override_settings(HEALTH_ALLOWED_NETWORKS=EVERYTHING, HEALTH_DENIED_NETWORKS=[]):
        status, reason = save(ops, address)
    assert status == 422 and "always refused" in reason, (address, reason)
    assert not HealthCheck.objects.exists()


@hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[Suppress.function_scoped_fixture]
)
@given(
    inner=ipv4,
    how=st.sampled_from(SPELLINGS),
    denied=ipv4,
    prefix=st.integers(min_value=8, max_value=32),
)
def test_a_wrapped_ipv4_address_is_judged_as_the_address_inside(ops, inner, how, denied, prefix):
    network = ipaddress.ip_network(f"{denied}/{prefix}", strict=False)
    with override_settings(HEALTH_DENIED_NETWORKS=[str(network)], HEALTH_ALLOWED_NETWORKS=[]):
        plain = save(ops, inner)
        spelled = save(ops, wrapped(inner, how))
    assert plain[0] == spelled[0], (inner, how, plain, spelled)
    for status, reason in (plain, spelled):
        assert (status == 422) == (inner in network or "always refused" in reason), (
            inner,
            how,
            network,
            reason,
        )
    if inner in network:
        assert "denied by HEALTH_DENIED_NETWORKS" in spelled[1] or "always refused" in spelled[1]

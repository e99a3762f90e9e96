"""The network policy: what is always refused, what the settings allow and deny, DNS-time
enforcement, and the static validation of check targets."""

import asyncio
import ipaddress
import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from healthchecks.probes import target_errors as validate_target
from healthchecks.probes.postgres import PASSWORD_ADVICE
from portal import egress
from portal.egress import NetworkPolicy, PolicyError, PolicyResolver, ResolveError


class Source:
    """A stand-in for django.conf.settings with only the HEALTH_* lists."""

    def __init__(self, **values: list[str]) -> None:
        for name, value in values.items():
            setattr(self, f"HEALTH_{name}", value)


def policy(**values: list[str]) -> NetworkPolicy:
    return NetworkPolicy.from_settings(Source(**values))


# --- Settings ---------------------------------------------------------------------------------


def test_from_settings_reads_every_list():
    built = policy(
        ALLOWED_NETWORKS=["10.0.0.0/8", "fd00::/8"],
        DENIED_NETWORKS=["10.66.0.0/16"],
        ALLOWED_PORTS=["80", "443", "8000-8099"],
        DENIED_PORTS=["25"],
        ALLOWED_HOSTS=["*.Internal."],
        DENIED_HOSTS=["vault.internal"],
    )
    assert built.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert built.allowed_ports == (range(80, 81), range(443, 444), range(8000, 8100))
    assert built.denied_ports == (range(25, 26),)
    assert built.allowed_hosts == ("*.internal",)


def test_from_django_settings(settings):
    settings.HEALTH_DENIED_PORTS = ["25", "6000-6010"]
    assert NetworkPolicy.from_settings().port_refusal(6005) == (
        "port 6005 is denied by HEALTH_DENIED_PORTS"
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DENIED_NETWORKS", "10.0.0.300/8", "is not a network"),
        ("ALLOWED_PORTS", "http", "is not a port or a range"),
        ("DENIED_PORTS", "9000-80", "is not within 1-65535"),
        ("DENIED_PORTS", "0", "is not within 1-65535"),
    ],
)
def test_bad_settings_fail_loudly(name, value, says):
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"HEALTH_{name}: '{value}' {says}")):
        policy(**{name: [value]})


# --- Addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "169.254.169.254 is link-local/metadata: always refused"),
        ("169.254.0.1", "169.254.0.1 is link-local/metadata: always refused"),
        ("fe80::1", "fe80::1 is link-local: always refused"),
        ("fd00:ec2::254", "fd00:ec2::254 is cloud metadata (AWS): always refused"),
        ("100.100.100.200", "100.100.100.200 is cloud metadata (Alibaba Cloud): always refused"),
        ("168.63.129.16", "168.63.129.16 is a cloud platform address (Azure): always refused"),
        # IPv4-compatible (deprecated form): ::a.b.c.d
        ("::169.254.169.254", "169.254.169.254 (as ::a9fe:a9fe) is link-local/metadata"),
        ("64:ff9b:1::a9fe:a9fe", "is NAT64 local-use (its IPv4 mapping is unknown)"),
        ("64:ff9b:1:ffff::1", "is NAT64 local-use (its IPv4 mapping is unknown)"),
        # 6to4 carries an IPv4 address in bits 16-47; Teredo its client's, obfuscated.
        ("2002:a9fe:a9fe::1", "169.254.169.254 (as 2002:a9fe:a9fe::1) is link-local/metadata"),
        ("2002:6464:64c8::", "100.100.100.200 (as 2002:6464:64c8::) is cloud metadata"),
        (
            "2001:0:4136:e378:8000:63bf:5601:5601",
            "169.254.169.254 (as 2001:0:4136:e378:8000:63bf:5601:5601) is link-local/metadata",
        ),
        ("0.0.0.0", "0.0.0.0 is unspecified: always refused"),  # noqa: S104
        ("::", ":: is unspecified: always refused"),
        ("224.0.0.251", "224.0.0.251 is multicast: always refused"),
        ("ff02::1", "ff02::1 is multicast: always refused"),
        ("255.255.255.255", "255.255.255.255 is broadcast: always refused"),
        (
            "::ffff:169.254.169.254",
            "169.254.169.254 (as ::ffff:a9fe:a9fe) is link-local/metadata: always refused",
        ),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254 (as 64:ff9b::a9fe:a9fe) is link-local"),
    ],
)
def test_always_refused_whatever_the_settings(address, reason):
    permissive = policy(ALLOWED_NETWORKS=["0.0.0.0/0", "::/0"])
    assert reason in (permissive.address_refusal(address) or "")
    assert reason in (NetworkPolicy().address_refusal(address) or "")


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "8.8.8.8"]
)
def test_private_loopback_and_public_are_allowed_by_default(address):
    assert NetworkPolicy().address_refusal(address) is None


def test_loopback_is_not_read_as_an_ipv4_compatible_address():
    """::1 and :: are in the IPv4-compatible range's bits but are IPv6's own addresses."""
    assert NetworkPolicy().address_refusal("::1") is None
    assert "unspecified" in NetworkPolicy().address_refusal("::")


def test_denied_networks_see_the_ipv4_inside_6to4():
    rules = policy(DENIED_NETWORKS=["10.66.0.0/16"])
    assert "denied by HEALTH_DENIED_NETWORKS" in rules.address_refusal("2002:0a42:0101::1")


@pytest.mark.parametrize("kind", ["http", "tcp"])
def test_an_address_with_a_trailing_dot_is_refused_when_saved(kind):
    target = "http://169.254.169.254./latest" if kind == "http" else "169.254.169.254.:80"
    assert validate_target(kind, target) == {
        "target": "169.254.169.254 is link-local/metadata: always refused"
    }


def test_denied_and_allowed_networks():
    rules = policy(ALLOWED_NETWORKS=["10.0.0.0/8"], DENIED_NETWORKS=["10.66.0.0/16"])
    assert rules.address_refusal("10.1.2.3") is None
    assert rules.address_refusal("10.66.1.1") == (
        "10.66.1.1 is in 10.66.0.0/16, denied by HEALTH_DENIED_NETWORKS"
    )
    assert rules.address_refusal("192.168.1.1") == "192.168.1.1 is not in HEALTH_ALLOWED_NETWORKS"
    # An IPv4 address wrapped in IPv6 is judged as the IPv4 address.
    assert "denied by HEALTH_DENIED_NETWORKS" in rules.address_refusal("::ffff:10.66.1.1")


# --- Ports and host names ---------------------------------------------------------------------


def test_ports():
    rules = policy(ALLOWED_PORTS=["80", "443", "8000-8099"], DENIED_PORTS=["8025"])
    assert rules.port_refusal(443) is None
    assert rules.port_refusal(8080) is None
    assert rules.port_refusal(8025) == "port 8025 is denied by HEALTH_DENIED_PORTS"
    assert rules.port_refusal(22) == "port 22 is not in HEALTH_ALLOWED_PORTS"


def test_host_patterns():
    rules = policy(ALLOWED_HOSTS=["*.example.com", "localhost"], DENIED_HOSTS=["*.internal"])
    assert rules.host_refusal("api.example.com") is None
    assert rules.host_refusal("API.Example.COM.") is None
    assert rules.host_refusal("localhost") is None
    assert rules.host_refusal("db.internal") == (
        "host db.internal is denied by HEALTH_DENIED_HOSTS ('*.internal')"
    )
    assert rules.host_refusal("evil.com") == "host evil.com is not in HEALTH_ALLOWED_HOSTS"
    # With an allow-list of names, address literals are not names on it.
    assert rules.host_refusal("10.0.0.5") == "host 10.0.0.5 is not in HEALTH_ALLOWED_HOSTS"


def test_endpoint_refusal_checks_literal_addresses_and_ports():
    rules = policy(DENIED_PORTS=["25"])
    assert "always refused" in rules.endpoint_refusal("169.254.169.254", 80)
    assert rules.endpoint_refusal("mail.example.com", 25) == (
        "port 25 is denied by HEALTH_DENIED_PORTS"
    )
    assert rules.endpoint_refusal("mail.example.com", 587) is None


# --- Resolution: where probes connect ---------------------------------------------------------


def resolve(rules: NetworkPolicy, host: str, port: int = 80) -> list[str]:
    return asyncio.run(rules.resolve(host, port))


def test_resolve_returns_only_allowed_addresses():
    assert resolve(NetworkPolicy(), "localhost") == ["127.0.0.1"]
    assert resolve(NetworkPolicy(), "10.1.2.3") == ["10.1.2.3"]


def test_resolve_refuses_a_name_whose_addresses_are_all_refused():
    rules = policy(DENIED_NETWORKS=["127.0.0.0/8", "::1/128"])
    with pytest.raises(PolicyError, match="localhost resolves only to refused addresses: "):
        resolve(rules, "localhost")


def test_resolve_refuses_literals_and_ports_before_dns():
    with pytest.raises(PolicyError, match="always refused"):
        resolve(NetworkPolicy(), "169.254.169.254")
    with pytest.raises(PolicyError, match="port 25 is denied"):
        resolve(policy(DENIED_PORTS=["25"]), "does-not-exist.invalid", 25)


def test_resolve_reports_a_name_that_does_not_resolve():
    with pytest.raises(ResolveError, match=r"does-not-exist\.invalid does not resolve"):
        resolve(NetworkPolicy(), "does-not-exist.invalid")


def test_aiohttp_resolver_answers_with_checked_addresses():
    resolver = PolicyResolver(NetworkPolicy())
    results = asyncio.run(resolver.resolve("localhost", 8080))
    assert [(r["hostname"], r["host"], r["port"]) for r in results] == [
        ("localhost", "127.0.0.1", 8080)
    ]
    denied = PolicyResolver(policy(DENIED_NETWORKS=["127.0.0.0/8", "::1/128"]))
    with pytest.raises(PolicyError):
        asyncio.run(denied.resolve("localhost", 8080))


# --- Static validation of targets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("http", "https://status.example.com/health"),
        ("http", "http://10.0.0.5:8080/healthz?verbose=1"),
        ("http", "http://[::1]:8000/"),
        ("tcp", "db.internal:5432"),
        ("tcp", "[::1]:5432"),
        ("postgres", "postgresql://app@db.internal:5432/app"),
        ("postgres", "postgres://app@10.0.0.7/app?sslmode=require"),
        ("redis", "redis://cache.internal:6379/0"),
        ("redis", "rediss://app@cache.internal/3"),
        ("heartbeat", ""),
        ("python", "healthchecks.watch.builtin.always_healthy"),
    ],
)
def test_valid_targets(kind, target):
    assert validate_target(kind, target, NetworkPolicy()) == {}


@pytest.mark.parametrize(
    ("kind", "target", "reason"),
    [
        ("http", "ftp://files.example.com/", "the scheme must be http or https, not 'ftp'"),
        ("http", "status.example.com/health", "the scheme must be http or https, not 'none'"),
        ("http", "http:///health", "the URL has no host"),
        ("http", "http://exa mple.com/", "'exa mple.com' is not a valid host name"),
        ("http", "http://example.com:99999/", "not a valid URL"),
        ("http", "http://ops:pw@example.com/", "credentials in the URL are not allowed"),
        ("http", "http://169.254.169.254/latest/", "169.254.169.254 is link-local/metadata"),
        ("http", "http://[::ffff:169.254.169.254]/", "always refused"),
        ("http", "http://[fd00:ec2::254]/", "fd00:ec2::254 is cloud metadata (AWS)"),
        ("http", "http://2130706433/", "'2130706433' is not a canonical address; write 127.0.0.1"),
        ("http", "http://0x7f.1/", "not a canonical address"),
        ("tcp", "db.internal", "expected host:port"),
        ("tcp", "db.internal:pg", "port 'pg' is not a number"),
        ("tcp", "db.internal:0", "the port must be from 1 to 65535"),
        ("tcp", "::1:5432", "put an IPv6 address in brackets: [::1]:5432"),
        ("tcp", "[db.internal]:5432", "in brackets is not an IPv6 address"),
        ("tcp", "169.254.169.254:80", "always refused"),
        ("postgres", "postgresql://app:s3cret@db:5432/app", PASSWORD_ADVICE),
        ("postgres", "host=db user=app password=s3cret", PASSWORD_ADVICE),
        ("postgres", "postgresql://app@db/app?service=prod", "'service' is not allowed"),
        ("postgres", "postgresql://app@db/app?hostaddr=169.254.169.254", "'hostaddr' is not"),
        ("postgres", "postgresql:///app", "the DSN must name a host"),
        ("postgres", "host=/var/run/postgresql dbname=app", "Unix sockets are not allowed"),
        ("postgres", "postgresql://app@a,b/app", "name one host"),
        ("postgres", "postgresql://app@db:70000/app", "the port must be from 1 to 65535"),
        ("postgres", "postgresql://app@169.254.169.254/app", "always refused"),
        ("redis", "redis://:s3cret@cache:6379/0", PASSWORD_ADVICE),
        ("redis", "unix:///run/redis.sock", "the scheme must be redis or rediss"),
        ("redis", "redis://cache:6379/zero", "the database 'zero' is not a number"),
        ("redis", "redis://cache:6379/0?timeout=1", "query parameters are not supported"),
        ("redis", "redis:///0", "the URL has no host"),
        ("redis", "redis://cache:port/0", "the port is not a number"),
        ("python", "os.system", "is not under HEALTH_CALLABLE_PREFIXES"),
    ],
)
def test_invalid_targets_name_the_reason(kind, target, reason):
    errors = validate_target(kind, target, NetworkPolicy())
    assert list(errors) == ["target"]
    assert reason in errors["target"], errors


def test_unknown_kind_is_a_kind_error():
    assert validate_target("smtp", "mail:25", NetworkPolicy()) == {
        "kind": "unknown check kind 'smtp' (one of http, tcp, postgres, redis, heartbeat, python)"
    }


def test_validate_target_uses_the_settings(settings):
    settings.HEALTH_DENIED_HOSTS = ["*.corp"]
    settings.HEALTH_DENIED_PORTS = ["25"]
    assert validate_target("http", "https://payroll.corp/health") == {
        "target": "host payroll.corp is denied by HEALTH_DENIED_HOSTS ('*.corp')"
    }
    assert validate_target("tcp", "mail.example.com:25") == {
        "target": "port 25 is denied by HEALTH_DENIED_PORTS"
    }
    assert validate_target("tcp", "mail.example.com:587") == {}


def test_password_in_a_target_never_appears_in_the_reason():
    for kind, target in [
        ("postgres", "postgresql://app:hunter22@db:5432/app"),
        ("postgres", "host=db password=hunter22"),
        ("redis", "redis://:hunter22@cache:6379/0"),
    ]:
        assert "hunter22" not in repr(validate_target(kind, target, NetworkPolicy()))


# --- The guard: synchronous clients (apprise, urllib) connect where the policy judged ----------


class Listener:
    """A local TCP listener that counts connections (a receiver no request should reach)."""

    def __init__(self, host: str = "127.0.0.1"):
        import socket
        import threading

        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


def urlopen(url: str):
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(url, timeout=2)


def test_inside_the_guard_a_refused_address_is_never_connected_to():
    listener = Listener()
    try:
        with (
            egress.guard(policy(DENIED_NETWORKS=["127.0.0.0/8"])) as guarded,
            pytest.raises(OSError, match="refused by the network policy"),
        ):
            urlopen(f"http://localhost:{listener.port}/")
        assert listener.accepted == 0
        assert guarded.reached == [("localhost", listener.port)]
        assert "is in 127.0.0.0/8, denied by HEALTH_DENIED_NETWORKS" in guarded.refused[0]
        # Outside the block the resolver answers as it always did.
        with pytest.raises(OSError):
            urlopen(f"http://localhost:{listener.port}/")
        assert listener.accepted == 1
    finally:
        listener.close()


def test_a_name_is_resolved_once_and_its_judged_answer_pinned(monkeypatch):
    """DNS rebinding: a name that answers an allowed address when judged and a denied one
    when the client looks it up again gets the judged answer both times."""
    import socket

    answers = iter(["10.1.2.3", "169.254.169.254"])
    asked = []

    def rebinding(host, port, *args):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(egress, "_RESOLVE", rebinding)
    with egress.guard(policy()) as guarded:
        first = socket.getaddrinfo("rebind.example", 80)
        second = socket.getaddrinfo("rebind.example", 80)
    assert first == second and first[0][4][0] == "10.1.2.3"
    assert asked == ["rebind.example"] and guarded.refused == []


def test_only_the_declared_place_is_reached():
    listener = Listener()
    try:
        with (
            egress.guard(policy(), only=[("127.0.0.1", 9)]) as guarded,
            pytest.raises(OSError, match="is not where this connects"),
        ):
            urlopen(f"http://127.0.0.1:{listener.port}/")
        assert listener.accepted == 0 and guarded.reached == [("127.0.0.1", listener.port)]
    finally:
        listener.close()


def test_a_trusted_place_passes_the_settings_but_never_the_always_refused():
    listener = Listener()
    try:
        denying = policy(DENIED_NETWORKS=["127.0.0.0/8"])
        place = ("127.0.0.1", listener.port)
        with (
            egress.guard(denying, only=[place], trusted=[place]),
            pytest.raises(OSError),  # accepted, then closed: no HTTP answer
        ):
            urlopen(f"http://127.0.0.1:{listener.port}/")
        assert listener.accepted == 1
        metadata = ("169.254.169.254", 80)
        with (
            egress.guard(denying, only=[metadata], trusted=[metadata]),
            pytest.raises(OSError, match="link-local/metadata: always refused"),
        ):
            urlopen("http://169.254.169.254/")
    finally:
        listener.close()


def test_another_thread_is_not_guarded_by_this_ones_block():
    import socket
    import threading

    seen = {}
    with egress.guard(policy(DENIED_NETWORKS=["127.0.0.0/8"])):
        thread = threading.Thread(target=lambda: seen.update(a=socket.getaddrinfo("127.0.0.1", 80)))
        thread.start()
        thread.join()
    assert seen["a"][0][4][0] == "127.0.0.1"


def test_a_verdict_survives_the_memo_starting_again_in_another_thread():
    """The memo starts again past 50,000 verdicts; another thread doing so between this
    thread's write and its read must not lose the verdict (a KeyError, found by issue 20's
    breaking trial). The memo here is cleared right after every write, as that thread would."""

    class ClearedAtOnce(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            self.clear()

    policy = NetworkPolicy()
    object.__setattr__(policy, "_memo", ClearedAtOnce())  # a frozen dataclass
    assert "link-local" in (policy.address_refusal("169.254.169.254") or "")
    assert policy.address_refusal("10.0.0.1") is None
    assert "link-local" in (policy.endpoint_refusal("169.254.169.254", 80) or "")

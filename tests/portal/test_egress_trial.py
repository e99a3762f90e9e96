"""Issue 20's egress guard, tried as an attacker and a failing network would (the breaking
trial): a guarded block inside another, an exception inside a block, a guard held in one
thread while a probe resolves on another's event loop, and host spellings the HTTP client
reads as an address but the resolver as a name. Real local listeners count connections; DNS
is stood in for at the OS boundary only -- the resolver the guard wraps (``egress._RESOLVE``,
Python's own getaddrinfo), as tests/portal/test_egress.py does -- never the portal's code."""

import asyncio
import socket
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from healthchecks.probes import make_spec
from healthchecks.probes.prober import Prober
from healthchecks.status import ErrorCode, Status
from portal import egress
from portal.egress import NetworkPolicy
from tests.healthchecks import servers
from tests.healthchecks.servers import ScriptedServer
from tests.portal.test_egress import Listener, policy, urlopen

DENIED = "127.0.0.2"


def answering(names: dict[str, str]):
    """A resolver that answers each of ``names`` with its address (a name a test owns),
    and asks the real one for everything else; what it was asked, in order, in ``.asked``."""
    real = egress._RESOLVE
    asked: list[str] = []

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in names:
            asked.append(name)
            address = names[name]
            kind = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if ":" in address else (address, int(port))
            return [(kind, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
        return real(host, port, family, type, proto, flags)

    resolve.asked = asked
    return resolve


# --- Nested blocks ----------------------------------------------------------------------------


def test_a_guard_inside_another_narrows_it_and_never_widens_it():
    """A block inside a guarded block (a helper with its own guard, a kind of action that
    calls another) must not reach what the enclosing block may not: not a place outside its
    ``only``, not an address its policy denies because the inner block trusts it. Before,
    the inner guard replaced the outer one for its duration."""
    listener = Listener()
    try:
        place = ("127.0.0.1", listener.port)
        with (
            egress.guard(policy(), only=[("127.0.0.1", 9)]) as outer,
            egress.guard(policy()),
            pytest.raises(OSError, match="not where this connects"),
        ):
            urlopen(f"http://127.0.0.1:{listener.port}/")
        assert listener.accepted == 0
        assert "is not where this connects (127.0.0.1:9)" in outer.refused[0]
        denying = policy(DENIED_NETWORKS=["127.0.0.0/8"])
        with (
            egress.guard(denying),
            egress.guard(policy(), only=[place], trusted=[place]) as inner,
            pytest.raises(OSError, match="denied by HEALTH_DENIED_NETWORKS"),
        ):
            urlopen(f"http://127.0.0.1:{listener.port}/")
        assert listener.accepted == 0 and inner.refused
        # Narrowing still works: the inner block's own rules apply within the outer's.
        with (
            egress.guard(policy()),
            egress.guard(denying) as inner,
            pytest.raises(OSError, match="denied by HEALTH_DENIED_NETWORKS"),
        ):
            urlopen(f"http://127.0.0.1:{listener.port}/")
        assert listener.accepted == 0 and inner.reached == [place]
        # And what both allow is reached, once resolved (the outer block's answer pinned).
        with (
            egress.guard(policy(), only=[place]),
            egress.guard(policy(), only=[place]),
            pytest.raises(OSError),  # accepted, then closed: no HTTP answer
        ):
            urlopen(f"http://127.0.0.1:{listener.port}/")
        assert listener.accepted == 1
    finally:
        listener.close()


def test_a_nested_block_gets_the_answer_the_enclosing_block_pinned(monkeypatch):
    """DNS rebinding across nested blocks: the inner block does not resolve the name a
    second time (which could answer the metadata address); it judges the pinned answer."""
    answers = iter(["10.1.2.3", "169.254.169.254"])
    asked = []

    def rebinding(host, port, *args):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(egress, "_RESOLVE", rebinding)
    with egress.guard(policy()):
        first = socket.getaddrinfo("rebind.example", 80)
        with egress.guard(policy()) as inner:
            second = socket.getaddrinfo("rebind.example", 80)
    assert first == second and second[0][4][0] == "10.1.2.3"
    assert asked == ["rebind.example"] and inner.refused == []


# --- A block that fails, threads --------------------------------------------------------------


def test_an_exception_inside_the_block_leaves_the_thread_as_it_was():
    """The guard is undone whatever ends the block; a pool thread that ran a failing
    guarded send resolves as before for the next task it runs (the automation sends from
    a pool)."""
    denying = policy(DENIED_NETWORKS=["127.0.0.0/8", "::1/128"])

    def failing_send():
        with egress.guard(denying, only=[("localhost", 80)]):
            socket.getaddrinfo("localhost", 80)  # refused: gaierror

    def next_task():
        return socket.getaddrinfo("localhost", 8080)[0][4][0]

    with ThreadPoolExecutor(max_workers=1) as pool:  # one thread: the same one runs both
        with pytest.raises(socket.gaierror, match="refused by the network policy"):
            pool.submit(failing_send).result()
        assert pool.submit(next_task).result() in ("127.0.0.1", "::1")
    with pytest.raises(KeyError), egress.guard(denying):
        raise KeyError("the send's own bug")
    assert socket.getaddrinfo("localhost", 8080)[0][4][0] in ("127.0.0.1", "::1")


def test_a_probe_resolves_by_its_own_policy_while_another_thread_holds_a_guard(httpserver):
    """A delivery thread inside a guard that denies loopback, at the same moment as an HTTP
    check to localhost runs on an event loop in another thread: the check resolves and
    connects by its own policy (here: everything allowed) and is healthy; the guard denies
    what its own thread asks."""
    httpserver.expect_request("/health").respond_with_data("ok")
    held, release = threading.Event(), threading.Event()
    seen = {}

    def delivery():
        with egress.guard(policy(DENIED_NETWORKS=["127.0.0.0/8", "::1/128"])):
            held.set()
            release.wait(10)
            try:
                socket.getaddrinfo("localhost", httpserver.port)
            except socket.gaierror as exc:
                seen["refused"] = str(exc)

    thread = threading.Thread(target=delivery)
    thread.start()
    try:
        assert held.wait(5)
        spec = make_spec(1, "http", httpserver.url_for("/health"), timeout=3.0)

        async def go():
            async with Prober(NetworkPolicy()) as prober:
                return await prober.probe(spec)

        outcome = asyncio.run(go())
    finally:
        release.set()
        thread.join(10)
    assert outcome.status == Status.HEALTHY, outcome
    assert len(httpserver.log) == 1
    assert "denied by HEALTH_DENIED_NETWORKS" in seen["refused"]


# --- Spellings the HTTP client reads as an address and the resolver as a name ---------------


@pytest.mark.parametrize("host", ["10.9.9.9.", "999.1.1.1", "1.2.3.4.5"])
def test_an_http_check_to_a_dotted_number_name_never_connects_unjudged(monkeypatch, host):
    """aiohttp takes a host of digits and dots for an address and does not ask the policy's
    resolver; the C library reads "10.9.9.9." (trailing dot), "999.1.1.1" and "1.2.3.4.5"
    as names and looks them up (a hosts file, a search domain). Here they resolve to a
    denied listener: the check must not reach it. (It holds: aiohttp 3.14 refuses a host it
    reads as an address that is not a canonical one; this keeps it held.)"""
    # The probes resolve outside any guard: their resolver is Python's own, stood in for.
    monkeypatch.setattr(socket, "getaddrinfo", answering({host: DENIED}))
    denying = policy(DENIED_NETWORKS=[f"{DENIED}/32"])
    with ScriptedServer(servers.answer(), host=DENIED) as denied:
        spec = make_spec(1, "http", f"http://{host}:{denied.port}/health", timeout=3.0)

        async def go():
            async with Prober(denying) as prober:
                return await prober.probe(spec)

        outcome = asyncio.run(go())
        tcp = make_spec(1, "tcp", f"{host}:{denied.port}", timeout=3.0)

        async def go_tcp():
            async with Prober(denying) as prober:
                return await prober.probe(tcp)

        tcp_outcome = asyncio.run(go_tcp())
        assert denied.connections == [] and denied.requests == []
    assert outcome.status == Status.UNHEALTHY and outcome.error_code != ErrorCode.NONE
    assert tcp_outcome.error_code == ErrorCode.BLOCKED
    assert f"{DENIED} is in {DENIED}/32, denied by HEALTH_DENIED_NETWORKS" in tcp_outcome.errors[0]


def test_a_guarded_client_given_a_dotted_number_name_gets_only_judged_answers(monkeypatch):
    """The same spellings through the guard (channels, webhooks): looked up once, judged on
    what they resolve to, never on what they look like."""
    monkeypatch.setattr(egress, "_RESOLVE", answering({"10.9.9.9.": DENIED}))
    listener = Listener(DENIED)
    try:
        with (
            egress.guard(policy(DENIED_NETWORKS=[f"{DENIED}/32"])) as guarded,
            pytest.raises(OSError, match="resolves only to refused addresses"),
        ):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            opener.open(f"http://10.9.9.9.:{listener.port}/", timeout=2)
        assert listener.accepted == 0
        assert f"{DENIED} is in {DENIED}/32, denied by HEALTH_DENIED_NETWORKS" in guarded.refused[0]
    finally:
        listener.close()

"""Running probes: a ``Prober`` per event loop, which dispatches each spec to its kind's probe
(healthchecks.probes.kinds) within the spec's timeout, and lends the kinds what they share --
resolving and connecting through the network policy, TLS contexts, an HTTP session.

How a worker runs many probes: concurrently on one event loop, all sharing one ``Prober``.
Either explicitly::

    async with Prober(NetworkPolicy.from_settings()) as prober:
        outcomes = await asyncio.gather(*(prober.probe(spec) for spec in specs))

or simply ``await probe(spec, policy)`` from many tasks: it uses a Prober shared per event loop
and policy, closed when the loop is shut down by ``asyncio.run()`` (a loop closed by hand
should use an explicit Prober instead). The caller bounds concurrency (e.g. a semaphore).

Every probe is bounded by ``spec.timeout`` as a whole (DNS, connect, TLS, redirects, body).
Header values and passwords never appear in an outcome: outcomes are scrubbed of them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl
import time
import weakref
from collections.abc import Callable
from typing import Any

import aiohappyeyeballs
import structlog

from healthchecks.probes.kinds import KINDS
from healthchecks.probes.outcome import (
    Failure,
    ProbeOutcome,
    ProbeSpec,
    Run,
    apply_latency_threshold,
    clip,
    describe,
    redact,
    seconds,
    worsen,
)
from healthchecks.status import ErrorCode, Status
from portal.egress import Endpoint, NetworkPolicy, PolicyError, ResolveError

log = structlog.get_logger(__name__)


async def probe(spec: ProbeSpec, policy: NetworkPolicy) -> ProbeOutcome:
    """Run one check, on the Prober shared by this event loop for this policy."""
    return await (await _shared_prober(policy)).probe(spec)


# probe()'s Probers: per event loop (a session belongs to one loop), per policy.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[NetworkPolicy, tuple]] = (
    weakref.WeakKeyDictionary()
)


async def _shared_prober(policy: NetworkPolicy) -> Prober:
    probers = _SHARED.setdefault(asyncio.get_running_loop(), {})
    entry = probers.get(policy)
    if entry is None:
        prober = Prober(policy)
        closer = _close_at_loop_end(prober, probers, policy)
        # Started on this loop, the generator is in the loop's async generators, which
        # asyncio.run() (and uvloop.run()) close before closing the loop: that closes the
        # session. The entry keeps it alive until then.
        entry = probers[policy] = (prober, closer)
        await anext(closer)
    return entry[0]


async def _close_at_loop_end(prober: Prober, probers: dict, policy: NetworkPolicy):
    try:
        yield
    finally:
        probers.pop(policy, None)
        await prober.close()


class Prober:
    """Runs probes on one event loop. What its probes share (an HTTP session, say) is kept
    as a resource of the Prober and closed with it.

    ``verify_context`` replaces the system CA store for ``verify_tls`` HTTP checks (an
    organisation's internal CA, or a test CA)."""

    def __init__(
        self, policy: NetworkPolicy | None = None, *, verify_context: ssl.SSLContext | None = None
    ) -> None:
        self.policy = policy or NetworkPolicy.from_settings()
        self.verify_context = verify_context
        self._resources: dict[str, Any] = {}

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def resource(self, name: str, make: Callable[[Prober], Any]) -> Any:
        """The resource ``name``, made by ``make(prober)`` the first time; it must have an
        async ``close()``."""
        if name not in self._resources:
            self._resources[name] = make(self)
        return self._resources[name]

    async def close(self) -> None:
        resources, self._resources = self._resources, {}
        for resource in resources.values():
            await resource.close()

    async def probe(self, spec: ProbeSpec) -> ProbeOutcome:
        started = time.perf_counter()
        run = Run(spec, ProbeOutcome(Status.HEALTHY))
        kind = KINDS.get(spec.kind)
        try:
            if kind is None:
                raise Failure(ErrorCode.INTERNAL, f"unknown check kind {spec.kind!r}")
            if kind.pushed:
                kind.probe(run)
            else:
                async with asyncio.timeout(spec.timeout):
                    await kind.probe(self, run)
        except Failure as failure:
            worsen(run.outcome, failure.status, failure.code, failure.message)
        except TimeoutError:
            message = f"timed out after {seconds(spec.timeout)} {run.stage}"
            worsen(run.outcome, Status.UNHEALTHY, ErrorCode.TIMEOUT, message)
        except Exception as exc:  # our bug, not the target's: say so and keep the worker going
            log.exception("probe_failed", check_id=spec.check_id, kind=spec.kind)
            message = f"probe error: {type(exc).__name__}: {clip(str(exc))}"
            worsen(run.outcome, Status.UNHEALTHY, ErrorCode.INTERNAL, message)
        outcome = run.outcome
        outcome.response_ms = round((time.perf_counter() - started) * 1000, 3)
        if kind is not None and not kind.pushed:
            apply_latency_threshold(spec, outcome)
        redact(spec, outcome)
        return outcome

    # --- What the kinds share ---------------------------------------------------------------

    async def resolve(self, run: Run, endpoint: Endpoint) -> list[str]:
        """The endpoint's addresses the policy allows (Failure when none are)."""
        run.stage = f"resolving {endpoint.host}"
        try:
            return await self.policy.resolve(endpoint.host, endpoint.port)
        except PolicyError as exc:
            raise Failure(ErrorCode.BLOCKED, str(exc)) from None
        except ResolveError as exc:
            raise Failure(ErrorCode.DNS, str(exc)) from None

    async def connect(self, run: Run, endpoint: Endpoint) -> socket.socket:
        """A connected socket to an allowed address of the endpoint (happy eyeballs)."""
        addresses = await self.resolve(run, endpoint)
        run.stage = f"connecting to {endpoint}"
        infos = [_addr_info(address, endpoint.port) for address in addresses]
        try:
            return await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)
        except (OSError, RuntimeError) as exc:  # uvloop raises RuntimeError for some
            raise connect_failure(exc, str(endpoint)) from None


def connect_failure(exc: BaseException, where: str) -> Failure:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return Failure(ErrorCode.REFUSED, f"connection refused by {where}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = f"TLS certificate of {where} not trusted: {exc.verify_message}"
        return Failure(ErrorCode.TLS, message)
    if isinstance(exc, ssl.SSLError):
        return Failure(ErrorCode.TLS, f"TLS handshake with {where} failed ({exc.reason or exc})")
    reason = getattr(exc, "strerror", None) or describe(exc)
    return Failure(ErrorCode.CONNECTION, f"cannot connect to {where}: {reason}")


@functools.cache
def tls_context(*, verify: bool) -> ssl.SSLContext:
    """Client contexts, made once. The unverified one loads no CA store on purpose: OpenSSL
    still builds the chain it will not check, and a store backed by /etc/ssl/certs costs a
    failed directory lookup per handshake for a self-signed or private-CA certificate
    (about 0.3 ms of CPU, measured), which is what verify-off targets usually have."""
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _addr_info(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))

"""Micro-benchmark: CPU time per HTTP probe, to see whether one worker can do 1,000 probes/s.

Runs ``healthchecks.probes`` at a fixed concurrency against a minimal asyncio HTTP server in
another process (it answers every request with a tiny 200 and closes: a new TCP connection
per probe), over plain HTTP and over HTTPS with an ECDSA P-256 self-signed certificate (a full
handshake per probe, verification off and on). It reports probes/s and the CPU microseconds
per probe spent by this (probing) process -- user + system time, from ``getrusage``.

It compares the ways to hold the HTTP session: one shared ``Prober`` (its connector has
``force_close``: a new connection per probe), ``probe()`` (which shares a Prober per event
loop), and a new Prober -- so a new session and connector -- for every probe.

    .venv/bin/python bench/probes.py                 # everything, uvloop and asyncio's loop
    .venv/bin/python bench/probes.py --probes 2000 --loop uvloop

Not a test and not part of ``make bench`` (no database). The server shares the machine's
cores with the prober, so probes/s is a floor; CPU per probe is what the budget is about:
1,000 probes/s on one core leaves 1,000 us per probe.
"""

import argparse
import asyncio
import datetime
import multiprocessing
import os
import resource
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.targets import Answer  # noqa: E402 - needs ROOT on sys.path when run as a script


@dataclass
class Result:
    name: str
    loop: str
    probes: int
    seconds: float
    cpu_seconds: float
    healthy: int

    @property
    def rate(self) -> float:
        return self.probes / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.probes * 1e6


# --- The server (another process) -------------------------------------------------------------


def serve(port_queue: multiprocessing.Queue, cert_dir: str | None) -> None:
    import uvloop

    async def main() -> None:
        context = None
        if cert_dir:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(f"{cert_dir}/cert.pem", f"{cert_dir}/key.pem")
        server = await asyncio.get_running_loop().create_server(
            Answer, "127.0.0.1", 0, ssl=context, backlog=1024
        )
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    uvloop.run(main())


def start_server(cert_dir: str | None) -> tuple[multiprocessing.Process, int]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=serve, args=(queue, cert_dir), daemon=True)
    process.start()
    return process, queue.get(timeout=10)


def stop_server(process: multiprocessing.Process) -> None:
    process.terminate()
    process.join(5)


def write_certificate(directory: str) -> None:
    """An ECDSA P-256 self-signed certificate for 127.0.0.1."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    Path(directory, "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(directory, "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


# --- The prober (this process) ----------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_probes(spec, count: int, concurrency: int, mode: str, verify_context) -> int:
    """``count`` probes by ``concurrency`` tasks; returns how many were healthy.

    Modes: "prober" -- one explicit Prober for all (its connector never reuses a
    connection); "probe" -- probe(spec, policy), which shares a Prober per loop; "fresh" -- a
    new Prober (session and connector) for every probe; "bare" -- no portal code at all, the
    issue's peer: one aiohttp session, a new connection per request, status and body read."""
    from healthchecks.probes import Prober, probe
    from healthchecks.status import Status
    from portal.egress import NetworkPolicy

    if mode == "bare":
        return await _bare_aiohttp(spec, count, concurrency)

    policy = NetworkPolicy()
    healthy = 0
    remaining = count

    async with Prober(policy, verify_context=verify_context) as shared:

        async def one() -> bool:
            if mode == "prober":
                outcome = await shared.probe(spec)
            elif mode == "probe":
                outcome = await probe(spec, policy)
            else:
                async with Prober(policy, verify_context=verify_context) as fresh:
                    outcome = await fresh.probe(spec)
            return outcome.status == Status.HEALTHY

        async def worker() -> None:
            nonlocal healthy, remaining
            while remaining > 0:
                remaining -= 1
                ok = await one()
                healthy += ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return healthy


async def _bare_aiohttp(spec, count: int, concurrency: int) -> int:
    import aiohttp

    healthy, remaining = 0, count
    connector = aiohttp.TCPConnector(force_close=True, limit=0, ssl=spec.options["verify_tls"])
    timeout = aiohttp.ClientTimeout(total=spec.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal healthy, remaining
            while remaining > 0:
                remaining -= 1
                async with session.get(spec.target) as response:
                    await response.read()
                    healthy += response.status < 400

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return healthy


def measure(name, loop_name, spec, options, mode, verify_context=None) -> Result:
    """The median of ``options.rounds`` runs (after a warm-up): other processes on the
    machine make single runs noisy."""
    factory = _loop_factory(loop_name)
    count, concurrency = options.probes, options.concurrency
    warmup = run_probes(spec, min(200, count), concurrency, mode, verify_context)
    asyncio.run(warmup, loop_factory=factory)
    rounds = []
    for _ in range(options.rounds):
        started_cpu, started = cpu_seconds(), time.perf_counter()
        healthy = asyncio.run(
            run_probes(spec, count, concurrency, mode, verify_context), loop_factory=factory
        )
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - started_cpu
        rounds.append(Result(name, loop_name, count, seconds, cpu, healthy))
    return sorted(rounds, key=lambda r: r.cpu_us)[len(rounds) // 2]


def _loop_factory(name: str):
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def scenarios(http_port: int, https_port: int, cert_dir: str):
    from healthchecks.probes import make_spec

    http = make_spec(1, "http", f"http://127.0.0.1:{http_port}/health", timeout=10)
    https_off = make_spec(
        2, "http", f"https://127.0.0.1:{https_port}/health", timeout=10, verify_tls=False
    )
    https_on = make_spec(3, "http", f"https://127.0.0.1:{https_port}/health", timeout=10)
    trust = ssl.create_default_context(cafile=f"{cert_dir}/cert.pem")
    return [
        ("http, bare aiohttp (no portal code)", http, "bare", None),
        ("http, shared Prober", http, "prober", None),
        ("http, probe() (Prober per loop)", http, "probe", None),
        ("http, new Prober per probe", http, "fresh", None),
        ("https verify off, bare aiohttp", https_off, "bare", None),
        ("https verify off, shared Prober", https_off, "prober", None),
        ("https verify on, shared Prober", https_on, "prober", trust),
        ("https verify off, new Prober per probe", https_off, "fresh", None),
    ]


def report(results: list[Result]) -> None:
    """probes/s is what this run reached (the server shares the cores); "per core" is how
    many probes one fully busy core could run at this CPU cost."""
    print(
        f"\n{'scenario':<40} {'loop':<8} {'probes/s':>9} {'CPU us/probe':>13} "
        f"{'per core/s':>11} {'healthy':>11}"
    )
    for r in results:
        print(
            f"{r.name:<40} {r.loop:<8} {r.rate:>9.0f} {r.cpu_us:>13.0f} "
            f"{1e6 / r.cpu_us:>11.0f} {r.healthy:>5}/{r.probes}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=5000, help="probes per scenario")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="runs per scenario (median shown)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    options = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DEBUG", "true")
    loops = ["uvloop", "asyncio"] if options.loop == "both" else [options.loop]

    with tempfile.TemporaryDirectory() as cert_dir:
        write_certificate(cert_dir)
        http_server, http_port = start_server(None)
        https_server, https_port = start_server(cert_dir)
        try:
            print(
                f"{options.probes} probes per round, {options.rounds} rounds (median shown), "
                f"concurrency {options.concurrency}, "
                f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
            )
            results = []
            for name, spec, mode, trust in scenarios(http_port, https_port, cert_dir):
                for loop_name in loops:
                    result = measure(name, loop_name, spec, options, mode, trust)
                    print(f"  {name} [{loop_name}]: {result.rate:.0f}/s, {result.cpu_us:.0f} us")
                    results.append(result)
        finally:
            stop_server(http_server)
            stop_server(https_server)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

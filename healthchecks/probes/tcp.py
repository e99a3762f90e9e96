"""TCP checks: a connection opens (to an address the network policy allows)."""

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import Run, parse_target
from healthchecks.probes.prober import Prober
from portal.egress import parse_host_port


async def probe_tcp(prober: Prober, run: Run) -> None:
    endpoint = parse_target(parse_host_port, run.spec.target)
    sock = await prober.connect(run, endpoint)
    sock.close()


KIND = Kind(name="tcp", label="TCP connect", probe=probe_tcp, endpoint=parse_host_port)

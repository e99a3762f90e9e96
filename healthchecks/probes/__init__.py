"""Probes: the only network I/O of the health-check engine, one module per kind of check.

``probe(spec, policy)`` runs one check and always returns a ``ProbeOutcome`` -- it never raises
for anything the target does (refuses, times out, answers garbage, answers forever): the
outcome says what went wrong. Probes are coroutines, so a worker runs a whole batch
concurrently on one event loop (healthchecks.probes.prober).

The kinds of check and what the portal knows of each are in healthchecks.probes.kinds; each
kind's probe and record are in a module of its own, registered here, in the order the API and
the admin list them.
"""

from healthchecks.probes import callables, heartbeat, http, postgres, redis, tcp
from healthchecks.probes.callables import load_callable, validate_callable_path
from healthchecks.probes.http import apply_health_document
from healthchecks.probes.kinds import KINDS, Kind, make_spec, register, target_errors
from healthchecks.probes.outcome import STATUS_WORDS, ProbeOutcome, ProbeSpec
from healthchecks.probes.prober import Prober, probe, tls_context

for _module in (http, tcp, postgres, redis, heartbeat, callables):
    register(_module.KIND)

__all__ = [
    "KINDS",
    "STATUS_WORDS",
    "Kind",
    "ProbeOutcome",
    "ProbeSpec",
    "Prober",
    "apply_health_document",
    "callables",
    "heartbeat",
    "http",
    "load_callable",
    "make_spec",
    "postgres",
    "probe",
    "redis",
    "target_errors",
    "tcp",
    "tls_context",
    "validate_callable_path",
]

"""What a probe needs of a check: its spec, built from the check's row (workers load a batch
with ``values(*SPEC_FIELDS)``), its secrets decrypted."""

from healthchecks.models import CheckState, HealthCheck
from healthchecks.probes import KINDS, ProbeSpec
from portal import encryption

SPEC_FIELDS = (
    "id",
    "kind",
    "target",
    "timeout",
    "latency_threshold_ms",
    "options",
    "secrets",
    "interval",
    "state__last_ping_at",
)


def probe_spec(check: HealthCheck, state: CheckState | None) -> ProbeSpec:
    row = {name: getattr(check, name) for name in SPEC_FIELDS if "__" not in name}
    row["state__last_ping_at"] = state.last_ping_at if state else None
    return spec_from_row(row)


def spec_from_row(row: dict) -> ProbeSpec:
    """A probe spec from a plain row of SPEC_FIELDS (workers load a batch with values())."""
    secrets = encryption.decrypt(row["secrets"]) if row["secrets"] else {}
    last_ping = row["state__last_ping_at"]
    kind = KINDS.get(row["kind"])  # an unknown kind is the prober's to report
    defaults = {k: v for k, v in kind.defaults().items() if k not in kind.secrets} if kind else {}
    return ProbeSpec(
        check_id=row["id"],
        kind=row["kind"],
        target=row["target"],
        timeout=row["timeout"],
        latency_threshold_ms=row["latency_threshold_ms"],
        interval=float(row["interval"]),
        options={**defaults, **row["options"]},
        secrets=secrets,
        last_ping_at=last_ping.timestamp() if last_ping else None,
    )

"""The kinds of check, one record each. What the portal knows of a kind -- its label, how its
target is read and where it points, its options and which of them are secret, how it is
probed -- is in its record and its own module (http, tcp, postgres, redis, heartbeat,
callables); the model, the API's schema, the admin, the network policy's checks on save and
the engine all read it from here.

Adding a kind (DNS, gRPC health, a TLS certificate's expiry, ...) is one new module in this
package that defines its probe, its options and its ``KIND = Kind(...)``, and its name in
``healthchecks/probes/__init__.py``: in the import, and in the list registered there
(tests/healthchecks/test_a_new_kind.py adds one on a copy of the code).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from healthchecks.probes.outcome import ProbeSpec
from portal.egress import Endpoint, NetworkPolicy, TargetError


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    # async (prober, run) -> None for kinds that reach out; (run) -> None for pushed kinds.
    probe: Callable[..., Any]
    # Its settings in a check's definition: a pydantic model whose fields (constraints,
    # defaults, descriptions) become fields of the API's check schema.
    options: type[BaseModel] | None = None
    secrets: tuple[str, ...] = ()  # which of its options are secret: stored encrypted
    # Network kinds: where a target points (TargetError when it is malformed); the network
    # policy judges that endpoint when a check is saved, and again at connect time.
    endpoint: Callable[[str], Endpoint] | None = None
    # Other kinds: why a target is refused (None when it is fine).
    check_target: Callable[[str], str | None] | None = None
    # The service calls the portal (a heartbeat): the check gets a ping URL, and its probe
    # judges the last ping without any I/O, timeout or latency threshold.
    pushed: bool = False

    @property
    def network(self) -> bool:
        return self.endpoint is not None

    def option_names(self) -> tuple[str, ...]:
        """Its settings stored in the clear (the check's ``options``)."""
        fields = self.options.model_fields if self.options else {}
        return tuple(name for name in fields if name not in self.secrets)

    def defaults(self) -> dict[str, Any]:
        """Its settings' defaults, secrets included."""
        found = {}
        for name, info in (self.options.model_fields if self.options else {}).items():
            if info.default_factory is not None:
                found[name] = info.default_factory()
            elif info.default is not PydanticUndefined:
                found[name] = info.default
        return found


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"check kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def names() -> tuple[str, ...]:
    return tuple(KINDS)


def target_errors(kind: str, target: str, policy: NetworkPolicy | None = None) -> dict[str, str]:
    """Field -> reason for a target this kind (and the network policy) would refuse; {} when
    fine. Static: no DNS, no connection (a name may still resolve to a refused address
    later, which the probe reports)."""
    record = KINDS.get(kind)
    if record is None:
        return {"kind": f"unknown check kind {kind!r} (one of {', '.join(KINDS)})"}
    if record.check_target is not None:
        reason = record.check_target(target)
        return {"target": reason} if reason else {}
    if not record.network:
        return {}
    try:
        endpoint = record.endpoint(target)
    except TargetError as exc:
        return {"target": str(exc)}
    policy = policy or NetworkPolicy.from_settings()
    reason = policy.endpoint_refusal(endpoint.host, endpoint.port)
    return {"target": reason} if reason else {}


def make_spec(
    check_id: int,
    kind: str,
    target: str,
    *,
    timeout: float,
    latency_threshold_ms: int | None = None,
    interval: float = 30.0,
    last_ping_at: float | None = None,
    **settings: Any,
) -> ProbeSpec:
    """A spec from a kind's settings given by name: options and secrets apart, defaults
    filled in. A setting the kind does not have is a TypeError (a typo, not a setting)."""
    record = KINDS.get(kind)
    if record is None:  # the prober reports an unknown kind as the probe's outcome
        record = Kind(name=kind, label=kind, probe=_unknown)
    values = {**record.defaults(), **settings}
    unknown = sorted(values.keys() - set(record.option_names()) - set(record.secrets))
    if unknown:
        raise TypeError(f"{kind} checks have no setting {', '.join(unknown)}")
    return ProbeSpec(
        check_id=check_id,
        kind=kind,
        target=target,
        timeout=timeout,
        latency_threshold_ms=latency_threshold_ms,
        interval=interval,
        options={k: v for k, v in values.items() if k not in record.secrets},
        secrets={k: v for k, v in values.items() if k in record.secrets and v},
        last_ping_at=last_ping_at,
    )


def _unknown(*args: Any) -> None:
    raise NotImplementedError

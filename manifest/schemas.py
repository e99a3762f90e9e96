"""A manifest item is a registry entry plus what the apps above the registry attach to a
service: its health checks (later its alerts). The registry's own shapes (services.schemas)
know nothing of them; these extend them."""

from ninja import Field

from healthchecks.schemas import CheckIn
from services import schemas as registry


class _WithChecks(registry.StrictSchema):
    checks: list[CheckIn] = Field(
        default_factory=list,
        max_length=100,
        description="Health checks; given, they are the service's whole set (matched by name).",
    )


class ServiceFieldsIn(registry.ServiceFieldsIn, _WithChecks):
    """A service without its name, with its checks. A field left out keeps its stored value
    (or its default, for a new service); a field given replaces it -- lists included."""


class ServiceIn(registry.ServiceIn, _WithChecks):
    pass


class ServiceUpsertIn(registry.ServiceUpsertIn, _WithChecks):
    pass


class ManifestIn(registry.StrictSchema):
    teams: list[registry.TeamIn] = Field(default_factory=list, max_length=1000)
    services: list[ServiceIn] = Field(default_factory=list, max_length=10_000)

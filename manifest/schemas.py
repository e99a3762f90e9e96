"""A manifest item is a registry entry plus what the apps above the registry attach to a
service: its health checks and, in a manifest, its configuration (later its alerts). The
registry's own shapes (services.schemas) know nothing of them; these extend them."""

from typing import Any

from ninja import Field, Schema
from pydantic import StrictStr

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


class ConfigSectionIn(registry.StrictSchema):
    """A service's configuration as a manifest states it: the schema (either form the
    schema endpoint takes) and the values, each optional. Given, they become the current
    schema and the current version (nothing new is stored when they equal them)."""

    schema_: dict[str, Any] | None = Field(
        None, alias="schema", description="JSON Schema 2020-12 or the seed's form."
    )
    values: dict[str, Any] | None = Field(
        None,
        description="The whole configuration; it must pass the schema at any level "
        "but `off` (a manifest describes the service whole: a mismatch is refused).",
    )
    comment: StrictStr = Field("", max_length=500)


class ManifestServiceIn(ServiceIn):
    config: ConfigSectionIn | None = Field(
        None,
        description="The service's configuration schema and values, applied in the "
        "same transaction as the rest of the manifest.",
    )


class ManifestIn(registry.StrictSchema):
    teams: list[registry.TeamIn] = Field(default_factory=list, max_length=1000)
    services: list[ManifestServiceIn] = Field(default_factory=list, max_length=10_000)


class ConfigAppliedOut(Schema):
    schema_version: int | None
    schema_changed: bool
    version: int | None
    changed: bool


class ManifestApplyOut(registry.ApplyOut):
    dry_run: bool = Field(description="True: checked and planned, then rolled back.")
    config: dict[str, ConfigAppliedOut] = Field(
        description="Per service whose configuration the manifest gives: its schema and "
        "configuration versions after applying, and whether either changed."
    )

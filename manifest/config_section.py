"""A manifest item's configuration (``config: {schema, values}``), written through the
configuration's own entry points (services.configs.put_schema and publish, each audited)
inside the manifest's transaction: a bad schema or values refuse the whole manifest, with
every service's reasons at once and each field named by its place in the manifest."""

import json
from dataclasses import dataclass

from django.conf import settings

from portal.errors import InvalidInput, PayloadTooLarge
from services import configs


@dataclass
class ConfigApplied:
    schema_version: int | None
    schema_changed: bool
    version: int | None
    changed: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def sections(manifest, single: bool) -> list[tuple[str, str, object]]:
    """(service name, field path prefix, section) of the items that carry a config."""
    found = []
    for i, item in enumerate(manifest.services):
        section = getattr(item, "config", None)
        if section is not None:
            found.append((item.name, "" if single else f"services[{i}].", section))
    return found


def write(found: list[tuple[str, str, object]], actor) -> dict[str, ConfigApplied]:
    """Store each section; InvalidInput naming every bad field if any is refused (the
    caller's transaction then undoes what was stored before)."""
    applied, errors = {}, {}
    for name, prefix, section in found:
        try:
            applied[name] = _write_one(name, prefix, section, actor)
        except _Refused as refused:
            errors.update(refused.fields)
    if errors:
        raise InvalidInput(
            "a service's configuration in the manifest is not valid; nothing was stored",
            fields=errors,
        )
    return applied


class _Refused(Exception):
    def __init__(self, fields: dict[str, str]):
        self.fields = fields


def _write_one(name: str, prefix: str, section, actor) -> ConfigApplied:
    where = f"{prefix}config"
    _limit_size(section, where)
    comment = section.comment or "applied from a manifest"
    schema_changed = False
    if section.schema_ is not None:
        try:
            report = configs.put_schema(name, section.schema_, actor, comment=comment)
        except InvalidInput as exc:
            raise _Refused(_under(f"{where}.schema", exc, own="schema")) from None
        schema_changed = report["changed"]
    changed = False
    if section.values is not None:
        current = configs.current_version(configs.get_service(name, lock=True))
        try:
            outcome = configs.publish(
                name, section.values, current.version if current else 0, actor, comment=comment
            )
        except InvalidInput as exc:
            raise _Refused(_under(where, exc)) from None
        if outcome.validation.issues:  # stored at the "lenient" level: a manifest must match
            raise _Refused({f"{where}.{k}": v for k, v in outcome.validation.issues.items()})
        changed = outcome.stored
    service = configs.get_service(name)
    schema, version = configs.current_schema(service), configs.current_version(service)
    return ConfigApplied(
        schema_version=schema.version if schema else None,
        schema_changed=schema_changed,
        version=version.version if version else None,
        changed=changed,
    )


def _under(where: str, exc: InvalidInput, own: str = "") -> dict[str, str]:
    """The error's fields as paths in the manifest (``own``: the key that names the whole
    document at ``where``)."""
    if not exc.fields:
        return {where: exc.message}
    return {where if key == own else f"{where}.{key}": reason for key, reason in exc.fields.items()}


def _limit_size(section, where: str) -> None:
    """The configuration endpoints' size limit holds for a manifest's sections too."""
    size = len(json.dumps(section.model_dump(by_alias=True), separators=(",", ":")))
    if size > settings.CONFIG_MAX_BYTES:
        raise PayloadTooLarge(
            f"{where} has {size} bytes; a configuration may have at most "
            f"{settings.CONFIG_MAX_BYTES}",
            limit=settings.CONFIG_MAX_BYTES,
        )

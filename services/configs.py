"""Configuration versions: validate, publish, read, diff, roll back.

Versions are immutable and numbered per service; the newest is current. A write names the
version it was based on and is refused (409) if that is no longer current, so two people
editing at once never lose an update silently. Secret leaves are encrypted before they are
stored and masked on the way out unless the caller may read secrets.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max

from portal import audit, encryption, security
from portal.auth import check_ownership
from portal.errors import Conflict, InvalidInput, NotFound
from services import config_schema, config_validation, queries
from services.dotenv import leaves
from services.models import ConfigSchema, ConfigVersion, Service, ValidationLevel

MASK = "********"


# --- Secret leaves --------------------------------------------------------------------------


def map_secrets(document, paths: list[list[str]], fn):
    """``document`` with ``fn(value, path)`` applied to every leaf at ``paths`` ("*" matches
    every item of an array); absent leaves stay absent. The input is never modified: only
    the objects along the paths are copied, the rest is shared."""
    for path in paths:
        document = _map_one(document, path, fn, ())
    return document


def _map_one(node, path, fn, prefix):
    if not path:
        return fn(node, prefix)
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(node, list):
        return [_map_one(item, rest, fn, (*prefix, i)) for i, item in enumerate(node)]
    if isinstance(node, dict) and head in node:
        return {**node, head: _map_one(node[head], rest, fn, (*prefix, head))}
    return node


def secret_leaves(document, paths: list[list[str]]) -> set[tuple]:
    """The concrete paths (names and indexes) of the secrets present in ``document``."""
    found: set[tuple] = set()

    def collect(value, path):
        found.add(path)
        return value

    map_secrets(document, paths, collect)
    return found


def is_secret_path(path, paths: list[list[str]]) -> bool:
    """Whether a concrete path (names and indexes) is, or is inside, a secret leaf."""
    for secret in paths:
        if len(path) >= len(secret) and all(
            (s == "*" and isinstance(p, int)) or s == p for s, p in zip(secret, path, strict=False)
        ):
            return True
    return False


def get_path(document, path):
    """The value at ``path``; KeyError if there is none."""
    for part in path:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            raise KeyError(path) from None
    return document


def reveal(version: ConfigVersion) -> dict:
    return map_secrets(
        version.values, version.secret_paths, lambda token, _: encryption.decrypt(token)
    )


def masked(version: ConfigVersion) -> dict:
    return map_secrets(version.values, version.secret_paths, lambda _value, _path: MASK)


def hidden_env_leaves(document: dict) -> set[tuple]:
    """dotenv leaves that are, or contain, a secret the caller may not read."""
    secrets = secret_leaves(document["values"], document["secret_paths"])
    prefixes = {secret[:i] for secret in secrets for i in range(1, len(secret) + 1)}
    return {
        path
        for path, _ in leaves(document["values"])
        if path in prefixes or any(path[:i] in secrets for i in range(1, len(path)))
    }


# --- Looking things up ----------------------------------------------------------------------


def get_service(name: str, *, lock: bool = False) -> Service:
    """The service, its row locked with ``lock`` (one writer of its configuration at a time)."""
    return queries.get_service(name, queryset=Service.objects.select_for_update() if lock else None)


def level_for(service: Service) -> str:
    return service.config_validation_level or settings.SERVICE_CONFIG_VALIDATION_LEVEL


def current_schema(service: Service) -> ConfigSchema | None:
    return service.config_schemas.order_by("-version").first()


def current_version(service: Service) -> ConfigVersion | None:
    """The newest version, without its schema (``schema_id`` is enough to compare)."""
    return service.config_versions.order_by("-version").first()


def get_version(service: Service, number: int | None = None) -> ConfigVersion:
    """The current or a given version, with its schema's number (``schema_number``) but not
    the schema document, which no reader of a version needs."""
    versions = service.config_versions.annotate(schema_number=F("schema__version"))
    if number is None:
        version = versions.order_by("-version").first()
        if version is None:
            raise NotFound(f"{service.name!r} has no configuration yet", code="no_config")
        return version
    version = versions.filter(version=number).first()
    if version is None:
        raise NotFound(
            f"{service.name!r} has no configuration version {number}", code="no_such_version"
        )
    return version


# --- Validation -----------------------------------------------------------------------------


@dataclass
class ValidationResult:
    """A document with its schema's defaults merged in, and whether it passed."""

    effective: dict
    valid: bool | None
    issues: dict[str, str] = field(default_factory=dict)


def validate(values: dict, schema: ConfigSchema | None, level: str) -> ValidationResult:
    """Merge the schema's defaults into ``values`` and validate at ``level``.

    Without a schema, or at level "off", nothing is checked and ``valid`` is None.
    """
    if schema is None:
        return ValidationResult(effective=values, valid=None)
    effective = config_schema.merge_defaults(schema.schema, values)
    if level == ValidationLevel.OFF:
        return ValidationResult(effective=effective, valid=None)
    issues = schema_issues(effective, schema)
    return ValidationResult(effective=effective, valid=not issues, issues=issues)


def schema_issues(document: dict, schema: ConfigSchema) -> dict[str, str]:
    """Field path ("values.db.port") -> reason, never quoting a secret's value. A schema
    that cannot be evaluated within the validation budget is an error of the request
    (InvalidInput on ``schema``), never a stalled worker."""
    issues: dict[str, str] = {}
    try:
        found = config_validation.errors(config_schema.validator_for(schema), document)
    except config_validation.ValidationTooCostly as exc:
        raise InvalidInput(
            "the configuration could not be validated against its schema",
            code="schema_too_costly",
            fields={"schema": str(exc)},
        ) from None
    for error in found:
        for path, reason in _describe(error, schema.secret_paths):
            where = "values" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            seen = issues.get(where, "")
            if reason not in seen.split("; "):  # one rule may fail twice (a schema's allOf)
                issues[where] = f"{seen}; {reason}" if seen else reason
    return issues


def _describe(error, secret_paths):
    path = list(error.absolute_path)
    if error.validator == "required":
        for name in error.validator_value:
            if isinstance(error.instance, dict) and name not in error.instance:
                yield [*path, name], "required field missing"
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        for name in error.instance:
            if name not in known:
                yield [*path, name], "unknown field"
        return
    if is_secret_path(path, secret_paths):
        yield (
            path,
            f"secret value fails the '{error.validator}' rule "
            f"({error.validator_value!r}); the value is not shown",
        )
        return
    if holds_secret(path, secret_paths):
        # The validator's message quotes the value: an object or list holding a secret
        # would be quoted whole (maxProperties, anyOf, not ... on a parent).
        yield (
            path,
            f"fails the '{error.validator}' rule ({error.validator_value!r}); the value "
            "is not shown: it holds a secret",
        )
        return
    yield path, error.message


def holds_secret(path, paths: list[list[str]]) -> bool:
    """Whether a concrete path (names and indexes) is above a secret leaf."""
    for secret in paths:
        if len(path) < len(secret) and all(
            (s == "*" and isinstance(p, int)) or s == p for s, p in zip(secret, path, strict=False)
        ):
            return True
    return False


# --- Writing --------------------------------------------------------------------------------


@dataclass
class Outcome:
    version: ConfigVersion | None  # the new (or, when unchanged, the current) version
    validation: ValidationResult
    changed: bool
    level: str
    stored: bool


def publish(
    name: str,
    values: dict,
    base_version: int | None,
    actor,
    *,
    comment: str = "",
    dry_run: bool = False,
    rolled_back_from: int | None = None,
) -> Outcome:
    """Store ``values`` as the next version, if ``base_version`` is still current (a dry run
    may leave it out: it stores nothing that a concurrent write could be lost to)."""
    if not dry_run:  # a dry run is a validation: anyone who reads may ask
        check_ownership(actor, [name])
    if not isinstance(values, dict):
        raise InvalidInput("a configuration is a JSON object", fields={"values": "not an object"})
    with transaction.atomic():
        service = get_service(name, lock=True)  # one writer per service at a time
        current = current_version(service)
        number = current.version if current else 0
        if base_version is None and not dry_run:
            raise InvalidInput(
                "base_version is required to store a version", fields={"base_version": "required"}
            )
        if base_version is not None and base_version != number:
            raise Conflict(
                f"version {base_version} is no longer current: {name!r} is at version {number}; "
                "read it, reapply your change and send it again",
                code="stale_version",
                current_version=number,
            )
        schema = current_schema(service)
        level = level_for(service)
        paths = schema.secret_paths if schema else []
        if current is not None:  # a masked read written back keeps its secret, still secret
            paths = merged_paths(paths, masked_at(values, current.secret_paths))
        stored = reveal(current) if current is not None else {}
        values = keep_masked_secrets(values, stored, paths)
        result = validate(values, schema, level)
        if result.issues and level == ValidationLevel.STRICT:
            raise InvalidInput(
                "the configuration does not match the schema; nothing was stored",
                fields=result.issues,
            )
        digest = encryption.content_hash(result.effective)
        if current is not None and current.content_hash == digest:
            return Outcome(current, result, changed=False, level=level, stored=False)
        if dry_run:
            return Outcome(None, result, changed=True, level=level, stored=False)
        version = ConfigVersion.objects.create(
            service=service,
            version=number + 1,
            schema=schema,
            validation_level=level,
            values=map_secrets(result.effective, paths, lambda v, _: encryption.encrypt(v)),
            secret_paths=paths,
            valid=result.valid,
            issues=result.issues,
            content_hash=digest,
            author=str(actor),
            comment=comment,
            rolled_back_from=rolled_back_from,
        )
        changes = diff_documents(stored, result.effective, paths)
        audit.record(
            actor,
            "config.rollback" if rolled_back_from else "config.publish",
            "service",
            name,
            {"version": version.version, "comment": comment, **summary(changes)},
        )
    return Outcome(version, result, changed=True, level=level, stored=True)


def masked_at(values: dict, paths) -> list:
    """The secret paths at which ``values`` holds the mask: a reader without config:secrets
    writing back what it read. A schema that no longer calls the leaf secret must not turn
    that into "********" stored, nor the secret behind it into clear text."""
    return [path for path in paths if _holds_mask(values, path)]


def _holds_mask(values: dict, path) -> bool:
    hits: list[bool] = []

    def look(value, _path):
        hits.append(value == MASK)
        return value

    map_secrets(values, [path], look)
    return any(hits)


def keep_masked_secrets(values: dict, stored: dict, paths) -> dict:
    """A secret sent back as the mask keeps the stored secret (``stored`` is the current
    version in clear); a mask with nothing stored behind it is an error (it would store the
    mask itself)."""
    missing = []

    def restore(value, path):
        if value != MASK:
            return value
        try:
            return get_path(stored, path)
        except KeyError:
            missing.append(
                "values" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            )
            return value

    restored = map_secrets(values, paths, restore)
    if missing:
        raise InvalidInput(
            "a masked secret was sent back where no secret is stored",
            fields={
                m: "masked placeholder with no stored secret; send the real value" for m in missing
            },
        )
    return restored


def rollback(
    name: str, to_version: int, actor, *, comment: str = "", base_version: int | None = None
) -> Outcome:
    """A new version equal to an old one (validated against the current schema)."""
    check_ownership(actor, [name])
    service = get_service(name)
    target = get_version(service, to_version)
    current = current_version(service) or target  # there is one: target is one of them
    base = current.version if base_version is None else base_version
    return publish(
        name,
        reveal(target),
        base,
        actor,
        comment=comment or f"rollback to version {to_version}",
        rolled_back_from=to_version,
    )


# --- Reading --------------------------------------------------------------------------------


def validity_now(
    version: ConfigVersion, schema: ConfigSchema | None, level: str
) -> tuple[bool | None, dict]:
    """Whether a stored version passes the *current* schema (what a reader wants to know).
    Under the schema it was written with, that is what was recorded then -- unless nothing was
    recorded (written at level "off") and the level now asks for checking. A schema too
    costly to evaluate leaves the answer open (None) and says why, rather than failing a read."""
    if schema is None:
        return None, {}
    if version.schema_id == schema.pk and (version.valid is not None or level == "off"):
        return version.valid, version.issues
    return _evaluate(reveal(version), schema)


def _evaluate(document: dict, schema: ConfigSchema) -> tuple[bool | None, dict]:
    try:
        issues = schema_issues(document, schema)
    except InvalidInput as exc:
        return None, exc.fields
    return not issues, issues


def read(name: str, number: int | None, *, reveal_secrets: bool, actor) -> dict:
    """A version as readers see it; version 0 (or, before any version is stored, the current
    one) is the schema's defaults, as the seed's config manager answers for a service with
    nothing stored yet."""
    service = get_service(name)
    if number == 0 or (number is None and current_version(service) is None):
        return _defaults_document(service)
    version = get_version(service, number)
    # Its document is loaded (deferred) only when the version was written under another one.
    schema = service.config_schemas.order_by("-version").only("id", "version").first()
    valid, issues = validity_now(version, schema, level_for(service))
    if reveal_secrets and version.secret_paths:
        values = reveal(version)
        audit.record(actor, "config.secrets_read", "service", name, {"version": version.version})
        security.record(
            security.Kind.SECRET_READ,
            actor,
            f"read the secrets of {name} config v{version.version}",
            "allowed",
            service=name,
            version=version.version,
        )
    else:
        values = masked(version)
    return {
        "service": name,
        "version": version.version,
        "defaults_only": False,
        "values": values,
        "valid": valid,
        "issues": issues,
        "hash": version.content_hash,
        "schema_version": version.schema_number,  # type: ignore[attr-defined]  # get_version's
        "current_schema_version": schema.version if schema else None,
        "validation_level": version.validation_level,
        "secret_paths": version.secret_paths,
        "secrets_masked": bool(version.secret_paths) and not reveal_secrets,
        "author": version.author,
        "comment": version.comment,
        "rolled_back_from": version.rolled_back_from,
        "created_at": version.created_at,
    }


def _defaults_document(service: Service) -> dict:
    """Version 0: what the current schema's defaults make up (a schema's secrets carry no
    defaults, so nothing here is secret)."""
    schema = current_schema(service)
    level = level_for(service)
    values = (config_schema.defaults_of(schema.schema) or {}) if schema else {}
    valid, issues = (None, {}) if schema is None or level == "off" else _evaluate(values, schema)
    return {
        "service": service.name,
        "version": 0,
        "defaults_only": True,
        "values": values,
        "valid": valid,
        "issues": issues,
        "hash": encryption.content_hash(values),
        "schema_version": schema.version if schema else None,
        "current_schema_version": schema.version if schema else None,
        "validation_level": level,
        "secret_paths": schema.secret_paths if schema else [],
        "secrets_masked": False,
        "author": "",
        "comment": "no version stored yet: the schema's defaults",
        "rolled_back_from": None,
        "created_at": None,
    }


# --- Differences ----------------------------------------------------------------------------


def flatten(document, paths, prefix: tuple = ()) -> dict[tuple, object]:
    """Leaves by path; objects are walked, arrays and scalars are leaves (a secret leaf
    stays one leaf whatever its type)."""
    if isinstance(document, dict) and document and not is_secret_path(prefix, paths):
        leaves = {}
        for key, value in document.items():
            leaves.update(flatten(value, paths, (*prefix, key)))
        return leaves
    return {prefix: document}


def diff_documents(old: dict, new: dict, paths) -> dict[str, list]:
    """Added, removed and changed leaves; a secret is named but its values never shown."""
    before, after = flatten(old, paths), flatten(new, paths)
    result: dict[str, list] = {"added": [], "removed": [], "changed": []}

    def entry(path, **values):
        name = ".".join(str(p) for p in path)
        if is_secret_path(path, paths):
            return {"path": name, "secret": True}
        return {"path": name, **values}

    for path in sorted(after.keys() - before.keys(), key=str):
        result["added"].append(entry(path, value=after[path]))
    for path in sorted(before.keys() - after.keys(), key=str):
        result["removed"].append(entry(path, value=before[path]))
    for path in sorted(before.keys() & after.keys(), key=str):
        if before[path] != after[path]:
            result["changed"].append(entry(path, old=before[path], new=after[path]))
    return result


def summary(changes: dict[str, list]) -> dict[str, list[str]]:
    """Only the paths of a diff: what goes in the audit log."""
    return {kind: [c["path"] for c in items] for kind, items in changes.items()}


def diff(name: str, from_version: int | None = None, to_version: int | None = None) -> dict:
    """Between two versions; ``to_version`` defaults to the current one and ``from_version``
    to the one before it."""
    service = get_service(name)
    if to_version is None:
        to_version = service.config_versions.aggregate(n=Max("version"))["n"]
        if to_version is None:
            raise NotFound(f"{name!r} has no configuration yet", code="no_config")
    from_version = from_version or max(1, to_version - 1)
    old = get_version(service, from_version)
    new = get_version(service, to_version)
    paths = merged_paths(old.secret_paths, new.secret_paths)
    return {
        "service": name,
        "from_version": old.version,
        "to_version": new.version,
        **diff_documents(reveal(old), reveal(new), paths),
    }


def merged_paths(a: list, b: list) -> list:
    """The secret paths of two versions together (a diff hides a leaf secret in either)."""
    return [list(p) for p in sorted({tuple(p) for p in a} | {tuple(p) for p in b})]


# --- Schemas --------------------------------------------------------------------------------


def put_schema(name: str, document: dict, actor, *, comment: str = "") -> dict:
    """Store a new schema version (unless it equals the current one) and re-validate the
    current configuration against it, in one transaction: a schema that cannot be used is
    refused before anything is stored (``config_schema.normalise``), and if re-validating the
    current configuration fails, nothing stays stored either."""
    check_ownership(actor, [name])
    schema_json, form = config_schema.normalise(document)
    with transaction.atomic():
        service = get_service(name, lock=True)
        current = current_schema(service)
        changed = current is None or current.schema != schema_json
        if current is None or changed:
            current = ConfigSchema.objects.create(
                service=service,
                version=(current.version + 1) if current else 1,
                schema=schema_json,
                source_format=form,
                source=document,
                secret_paths=config_schema.secret_paths(schema_json),
                author=str(actor),
                comment=comment,
            )
            audit.record(
                actor,
                "config.schema",
                "service",
                name,
                {"version": current.version, "format": form, "comment": comment},
            )
        config = current_version(service)
        report = None
        if config is not None:
            valid, issues = validity_now(config, current, level_for(service))
            report = {"version": config.version, "valid": valid, "issues": issues}
    return {
        "service": name,
        "version": current.version,
        "changed": changed,
        "source_format": current.source_format,
        "secret_paths": current.secret_paths,
        "current_config": report,
    }


# --- Key rotation ---------------------------------------------------------------------------


def rotate_secrets(batch_size: int = 500) -> int:
    """Re-encrypt every stored secret with the first key; returns how many versions changed.
    Version rows are immutable in content; only the ciphertext of their secrets changes."""
    changed = 0
    rows = ConfigVersion.objects.exclude(secret_paths=[]).order_by("pk")
    for version in rows.iterator(chunk_size=batch_size):
        values = map_secrets(
            version.values, version.secret_paths, lambda token, _: encryption.rotate(token)
        )
        if values != version.values:
            ConfigVersion.objects.filter(pk=version.pk).update(values=values)
            changed += 1
    return changed

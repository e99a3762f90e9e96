"""Configuration API: thin handlers over services.configs and services.deployments."""

from typing import Any, Literal

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from ninja import Body, Field, Path, Query, Router, Schema, Status
from pydantic import StrictBool, StrictStr

from portal.auth import authorize
from portal.errors import InvalidInput, NotFound, PayloadTooLarge, answers
from portal.fields import MAX_INT32, Integer, UrlInteger
from portal.models import Scope
from portal.responses import json_response
from services import config_import, configs, deployments
from services.dotenv import to_dotenv
from services.schemas import (
    ConfigIn,
    ConfigOut,
    ConfigVersionOut,
    DeploymentIn,
    DeploymentOut,
    DiffOut,
    DriftListItemOut,
    DriftOut,
    PublishOut,
    RollbackIn,
    SchemaOut,
    SchemaPutOut,
    StrictSchema,
    ValidateIn,
)

router = Router(tags=["configuration"])
READ, WRITE, SECRETS = Scope.CONFIG_READ, Scope.CONFIG_WRITE, Scope.CONFIG_SECRETS


def _limit_size(request: HttpRequest) -> None:
    if len(request.body) > settings.CONFIG_MAX_BYTES:
        raise PayloadTooLarge(
            f"a configuration document may have at most {settings.CONFIG_MAX_BYTES} bytes",
            limit=settings.CONFIG_MAX_BYTES,
        )


def _publish_body(name: str, outcome) -> dict:
    version = outcome.version
    return {
        "service": name,
        "version": version.version if version else None,
        "changed": outcome.changed,
        "stored": outcome.stored,
        "valid": outcome.validation.valid,
        "warnings": outcome.validation.issues,
        "validation_level": outcome.level,
        "hash": version.content_hash if version else "",
    }


@router.get(
    "/services/{name}/config",
    response={200: ConfigOut},
    summary="Read the current (or a given) configuration",
    description="`format=env` answers a dotenv file a shell can source. Secrets are masked "
    "(JSON) or left out (env) unless the caller holds `config:secrets`.",
    openapi_extra=answers(
        {
            200: {
                "content": {
                    "text/plain": {
                        "schema": {"type": "string"},
                        "example": "CURRENCY='EUR'\nTIMEOUT='30'\n",
                    }
                },
                "headers": {
                    "X-Config-Version": {
                        "description": "the version read (format=env)",
                        "schema": {"type": "string"},
                    },
                    "X-Config-Hash": {
                        "description": "its content hash (format=env)",
                        "schema": {"type": "string"},
                    },
                },
            },
            409: "`env_key_collision` (format=env): two fields become the same variable",
        }
    ),
)
def read_config(
    request: HttpRequest,
    name: str,
    version: UrlInteger | None = Query(None, ge=0, le=MAX_INT32),
    format: Literal["json", "env"] = "json",
    prefix: str = "",
):
    principal = authorize(request, READ, service=name)
    reveal = principal.has_scope(SECRETS)
    document = configs.read(name, version, reveal_secrets=reveal, actor=principal)
    if format == "env":
        if prefix and not prefix.replace("_", "").isalnum():
            raise InvalidInput("bad prefix", fields={"prefix": "letters, digits and _ only"})
        hidden = set() if reveal else configs.hidden_env_leaves(document)
        text = to_dotenv(document["values"], hidden=hidden, prefix=prefix)
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        response["X-Config-Version"] = str(document["version"])
        response["X-Config-Hash"] = document["hash"]
        return response
    # The values are the stored document; re-validating them item by item would only cost.
    return json_response(document)


@router.post(
    "/services/{name}/config",
    response={200: PublishOut, 201: PublishOut},
    summary="Store a new configuration version",
    description="201 with the new version; 200 when the content equals the current version "
    "(nothing stored); 409 when `base_version` is no longer current; 422 with `error.fields` "
    "naming each bad field (strict level). A secret sent back masked keeps its stored value.",
    openapi_extra=answers(
        {409: "`stale_version`: `base_version` is no longer current (with `current_version`)"}
    ),
)
def publish_config(request: HttpRequest, name: str, payload: ConfigIn):
    principal = authorize(request, WRITE, service=name)
    _limit_size(request)
    outcome = configs.publish(
        name, payload.values, payload.base_version, principal, comment=payload.comment
    )
    return Status(201 if outcome.stored else 200, _publish_body(name, outcome))


@router.post(
    "/services/{name}/config/validate",
    response=PublishOut,
    summary="Validate a configuration without storing it (dry run)",
    description="The same body and answers as storing it, but nothing is stored; "
    "`base_version` is optional here.",
    openapi_extra=answers(
        {409: "`stale_version`: `base_version` is no longer current (with `current_version`)"}
    ),
)
def validate_config(request: HttpRequest, name: str, payload: ValidateIn):
    principal = authorize(request, READ, service=name)
    _limit_size(request)
    outcome = configs.publish(
        name, payload.values, payload.base_version, principal, comment=payload.comment, dry_run=True
    )
    return _publish_body(name, outcome)


class ConfigImportIn(StrictSchema):
    dotenv: StrictStr | None = Field(
        None, description="A dotenv file's text (KEY=value lines); or give `env`."
    )
    dialect: Literal["auto", "shell", "docker"] = Field(
        "auto",
        description="How `dotenv` is read. `shell`: as a POSIX shell reads assignments "
        "('single' and \"double\" quotes, \\ escapes, ` #` comments, `export`), as the "
        "portal's own `?format=env` writes; `docker`: as `docker run --env-file` does, each "
        "value literally after the first `=`, comments only on lines starting with `#`. "
        "`auto`: shell when a value starts with a quote or a line with `export` (or when "
        "only a shell reads it), else docker.",
    )
    env: dict[StrictStr, StrictStr] | None = Field(None, description="KEY -> value pairs.")
    prefix: StrictStr = Field(
        "",
        max_length=100,
        pattern=r"^[A-Za-z0-9_]*$",
        description="Only keys that start with it are taken, without it (`LEGACY_`).",
    )
    propose_schema: StrictBool = Field(
        False,
        description="Store a schema proposed from the values' types first (each field "
        "required and typed; credential-like names secret).",
    )
    base_version: Integer | None = Field(
        None, ge=0, le=MAX_INT32, description="Optional: given, 409 if no longer current."
    )
    comment: StrictStr = Field("", max_length=500)
    dry_run: StrictBool = Field(False, description="Check and answer; store nothing.")


class ParseWarningOut(Schema):
    key: str
    line: int
    reason: str


class ConfigImportOut(PublishOut):
    dry_run: bool
    dialect: str | None = Field(
        description="How the dotenv text was read: shell or docker (null for `env`)."
    )
    parse_warnings: list[ParseWarningOut] = Field(
        description="Each key whose value another reader would take otherwise: quotes inside "
        "it removed, a backslash read, a comment dropped (shell), quotes, ` #` or space kept "
        "(docker), a key set twice. No values: a warning may be about a secret."
    )
    keys: dict[str, str] = Field(description="Each imported key -> its field path.")
    types: dict[str, str] = Field(description="Each field path -> the JSON type imported.")
    ignored: list[str] = Field(description="Keys without the prefix, left out.")
    schema_version: int | None
    proposed_schema: dict[str, Any] | None


@router.post(
    "/services/{name}/config/import",
    response={200: ConfigImportOut, 201: ConfigImportOut},
    summary="Import environment variables as a configuration version",
    description="The seed's configuration migration: a dotenv file (or key/value pairs) "
    "becomes a validated version. Keys lose the prefix and are lower-cased, `__` nests "
    "(`DB__PORT` -> `db.port`); values take the type the current schema declares, or without "
    "one the type they read as (integer, number, `true`/`false`, JSON array or object, else "
    "string). `propose_schema` stores a schema made from those types first. 201 with the "
    "new version; 200 when nothing changed or on a dry run; 409 `stale_version` when "
    "`base_version` is no longer current; 422 naming each bad line (`dotenv:3`), key "
    "(`env.DB__`) or value (`values.api_timeout`). `dialect` says how the text is read "
    "(`auto` by default); `parse_warnings` names each key whose value another reader would "
    "take otherwise.",
    openapi_extra=answers(
        {409: "`stale_version`: `base_version` is no longer current (with `current_version`)"}
    ),
)
def import_config(request: HttpRequest, name: str, payload: ConfigImportIn):
    principal = authorize(request, WRITE, service=name)
    _limit_size(request)
    read = None
    if payload.env is not None and payload.dotenv is None:
        if payload.dialect != "auto":
            raise InvalidInput(
                "a dialect reads dotenv text", fields={"dialect": "only with dotenv, not env"}
            )
        env = payload.env
    elif payload.dotenv is not None and payload.env is None:
        read = config_import.read_dotenv(payload.dotenv, payload.dialect)
        env = read.values
    else:
        raise InvalidInput("give one of dotenv or env", fields={"dotenv": "or env: one of them"})
    imported = config_import.import_env(
        name,
        env,
        principal,
        **payload.model_dump(include={"prefix", "base_version", "comment", "dry_run"}),
        propose=payload.propose_schema,
    )
    body = {
        **_publish_body(name, imported.outcome),
        "stored": imported.outcome.stored and not payload.dry_run,
        "dry_run": payload.dry_run,
        "keys": imported.mapping,
        "types": imported.types,
        "ignored": imported.ignored,
        "schema_version": imported.schema_version,
        "proposed_schema": imported.schema,
        "dialect": read.dialect if read else None,
        "parse_warnings": read.warnings if read else [],
    }
    return Status(201 if body["stored"] else 200, body)


@router.post(
    "/services/{name}/config/rollback",
    response={200: PublishOut, 201: PublishOut},
    summary="Store a new version equal to an old one",
    openapi_extra=answers(
        {409: "`stale_version`: `base_version` is no longer current (with `current_version`)"}
    ),
)
def rollback_config(request: HttpRequest, name: str, payload: RollbackIn):
    principal = authorize(request, WRITE, service=name)
    outcome = configs.rollback(
        name,
        payload.to_version,
        principal,
        comment=payload.comment,
        base_version=payload.base_version,
    )
    return Status(201 if outcome.stored else 200, _publish_body(name, outcome))


@router.get("/services/{name}/config/versions", response=list[ConfigVersionOut])
def list_config_versions(
    request: HttpRequest, name: str, limit: UrlInteger = Query(100, ge=1, le=1000)
):
    authorize(request, READ, service=name)
    service = configs.get_service(name)
    rows = service.config_versions.annotate(schema_number=F("schema__version")).order_by("-version")
    return [
        {
            "version": v.version,
            "valid": v.valid,
            "hash": v.content_hash,
            "schema_version": v.schema_number,
            "validation_level": v.validation_level,
            "author": v.author,
            "comment": v.comment,
            "rolled_back_from": v.rolled_back_from,
            "created_at": v.created_at,
        }
        for v in rows[:limit]
    ]


@router.get("/services/{name}/config/versions/{number}", response=ConfigOut)
def read_config_version(
    request: HttpRequest, name: str, number: UrlInteger = Path(..., ge=0, le=MAX_INT32)
):
    principal = authorize(request, READ, service=name)
    return configs.read(name, number, reveal_secrets=principal.has_scope(SECRETS), actor=principal)


@router.get(
    "/services/{name}/config/diff",
    response=DiffOut,
    summary="What changed between two versions (secrets named, never shown)",
)
def diff_config(
    request: HttpRequest,
    name: str,
    from_version: UrlInteger | None = Query(None, ge=1, le=MAX_INT32),
    to_version: UrlInteger | None = Query(None, ge=1, le=MAX_INT32),
):
    authorize(request, READ, service=name)
    return configs.diff(name, from_version, to_version or None)


@router.get("/services/{name}/config/schema", response=SchemaOut, by_alias=True)
def read_schema(
    request: HttpRequest, name: str, version: UrlInteger | None = Query(None, ge=1, le=MAX_INT32)
):
    authorize(request, READ, service=name)
    service = configs.get_service(name)
    rows = service.config_schemas.order_by("-version")
    row = rows.filter(version=version).first() if version else rows.first()
    if row is None:
        raise NotFound(
            f"{name!r} has no configuration schema" + (f" version {version}" if version else ""),
            code="no_schema",
        )
    return {
        "service": name,
        "version": row.version,
        "schema": row.schema,
        "source_format": row.source_format,
        "source": row.source,
        "secret_paths": row.secret_paths,
        "author": row.author,
        "comment": row.comment,
        "created_at": row.created_at,
    }


@router.put(
    "/services/{name}/config/schema",
    response={200: SchemaPutOut, 201: SchemaPutOut},
    summary="Store a schema (JSON Schema 2020-12, or the seed's ServiceConfigSchema form)",
    description="The body is the schema itself. The same schema twice stores nothing the "
    "second time. The answer says whether the current configuration passes the new schema.",
)
def put_schema(request: HttpRequest, name: str, payload: Body[dict[str, Any]], comment: str = ""):
    principal = authorize(request, WRITE, service=name)
    _limit_size(request)
    result = configs.put_schema(name, payload, principal, comment=comment[:500])
    return Status(201 if result["changed"] else 200, result)


@router.post(
    "/services/{name}/deployments",
    response={200: DeploymentOut, 201: DeploymentOut},
    summary="Report a deployment (which build, which configuration); the portal verifies it",
    description="A rollout reported in progress or succeeded is verified on the results "
    "recorded after this report (`verification`, pending until its verdict: poll "
    "`GET .../deployments/{id}`). 201: a new deployment; 200: the report named the version "
    "whose verification is still pending, and moved that deployment's status.",
)
def report_deployment(request: HttpRequest, name: str, payload: DeploymentIn):
    principal = authorize(request, Scope.REGISTRY_WRITE, service=name)
    deployment, created = deployments.report(name, actor=principal, **payload.model_dump())
    return Status(201 if created else 200, _deployment_dict(name, deployment))


@router.get("/services/{name}/deployments", response=list[DeploymentOut])
def list_deployments(request: HttpRequest, name: str, limit: UrlInteger = Query(50, ge=1, le=500)):
    authorize(request, Scope.REGISTRY_READ, service=name)
    service = configs.get_service(name)
    return [_deployment_dict(name, d) for d in service.deployments.all()[:limit]]


@router.get(
    "/services/{name}/deployments/{deployment_id}",
    response=DeploymentOut,
    summary="One deployment and its verification (what `portalctl deploy --wait` polls)",
)
def get_deployment(request: HttpRequest, name: str, deployment_id: UrlInteger):
    authorize(request, Scope.REGISTRY_READ, service=name)
    service = configs.get_service(name)
    deployment = service.deployments.filter(pk=deployment_id).first()
    if deployment is None:
        raise NotFound(f"{name!r} has no deployment {deployment_id}")
    return _deployment_dict(name, deployment)


@router.get("/services/{name}/config/drift", response=DriftOut)
def service_drift(request: HttpRequest, name: str):
    authorize(request, READ, service=name)
    return deployments.drift(configs.get_service(name))


@router.get(
    "/config/drift",
    response=list[DriftListItemOut],
    summary="Every service whose deployed configuration is not the current one",
)
def all_drift(request: HttpRequest):
    principal = authorize(request, READ)
    rows = deployments.drifting_services()
    return [r for r in rows if principal.may_act_on(r["service"])]


def _deployment_dict(name: str, deployment) -> dict:
    return {
        "id": deployment.pk,
        "service": name,
        "version": deployment.version,
        "status": deployment.status,
        "config_version": deployment.config_version,
        "config_hash": deployment.config_hash,
        "link": deployment.link,
        "actor": deployment.actor,
        "created_at": deployment.created_at,
        "bake_seconds": deployment.bake_seconds,
        "verification": deployments.verification(deployment),
    }

"""Issuing and checking API tokens."""

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal import audit, security
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.models import ApiToken, Scope
from portal.ownership import Ownership

TOKEN_PREFIX = "svp_"  # noqa: S105 (a marker, not a secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise InvalidInput(
            "unknown scope",
            fields={"scopes": f"unknown: {', '.join(unknown)}; known: {', '.join(Scope.values)}"},
        )
    if not scopes:
        raise InvalidInput("a token needs at least one scope", fields={"scopes": "empty"})
    return sorted(set(scopes))


def check_teams(teams: list[str]) -> list[str]:
    teams = sorted(set(teams))
    unknown = sorted(set(teams) - Ownership.teams_named(teams))
    if unknown:
        raise InvalidInput("unknown team", fields={"teams": f"no team named {', '.join(unknown)}"})
    return teams


def check_grant(issuer, scopes: list[str], services: list[str], teams: Sequence[str] = ()) -> None:
    """Nobody hands out more than they hold: every scope of the token must be one of the
    issuer's, and an issuer limited to some services or teams may only issue tokens limited
    to (some of) those."""
    beyond = sorted(set(scopes) - set(issuer.scopes))
    if beyond:
        raise Forbidden(
            f"{issuer} cannot grant scopes it does not hold: {', '.join(beyond)}",
            fields={"scopes": f"not yours to grant: {', '.join(beyond)}"},
        )
    if issuer.services is not None:
        reach = set(services) | Ownership.team_services(teams)
        outside = sorted(reach - issuer.services) if reach else ["every service"]
        outside += sorted(set(teams) - (issuer.teams or set()))
        if outside:
            raise Forbidden(
                f"{issuer} cannot grant services outside its reach: {', '.join(outside)}",
                fields={"services": f"not yours to grant: {', '.join(outside)}"},
            )


@transaction.atomic
def issue_token(
    name: str,
    scopes: list[str],
    *,
    services: list[str] | None = None,
    teams: list[str] | None = None,
    expires_in: timedelta | None = None,
    expires_at=None,
    issuer,
    created_by=None,
) -> IssuedToken:
    """Make a token; ``issuer`` (a principal) must hold every scope and service it grants.
    A token limited to ``teams`` reaches their services (those of the moment it is used).
    The audit row names the issuer, never the secret."""
    if not name.strip():
        raise InvalidInput("a token needs a name", fields={"name": "empty"})
    if ApiToken.objects.filter(name=name).exists():
        raise InvalidInput("name taken", fields={"name": f"a token named {name!r} exists"})
    scopes = check_scopes(scopes)
    services = sorted(set(services or []))
    teams = check_teams(teams or [])
    check_grant(issuer, scopes, services, teams)
    secret = new_secret()
    token = ApiToken.objects.create(
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        secret_hash=hash_secret(secret),
        scopes=scopes,
        services=services,
        teams=teams,
        expires_at=expires_at or (timezone.now() + expires_in if expires_in else None),
        created_by=created_by,
    )
    audit.record(
        issuer,
        "token.create",
        "token",
        name,
        {
            "scopes": scopes,
            "services": services,
            "teams": teams,
            "expires_at": str(token.expires_at or ""),
        },
    )
    security.record(
        security.Kind.TOKEN_CREATED, issuer, f"create token {name}", "allowed", scopes=scopes
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def update_token(token: ApiToken, changes: dict, *, issuer) -> ApiToken:
    """Change a token's scopes, services, teams, expiry or activity (revocation), within
    what the issuer may grant; audited."""
    scopes = check_scopes(changes.get("scopes", token.scopes))
    services = sorted(set(changes.get("services", token.services)))
    teams = check_teams(changes.get("teams", token.teams))
    check_grant(issuer, scopes, services, teams)
    fields = ["scopes", "services", "teams", "expires_at", "is_active"]
    before = {f: getattr(token, f) for f in fields}
    token.scopes, token.services, token.teams = scopes, services, teams
    for attr in ("expires_at", "is_active"):
        if attr in changes:
            setattr(token, attr, changes[attr])
    token.save(update_fields=fields)
    after = {f: getattr(token, f) for f in before}
    diff = {f: [str(before[f]), str(after[f])] for f in before if before[f] != after[f]}
    action = "token.revoke" if before["is_active"] and not token.is_active else "token.update"
    audit.record(issuer, action, "token", token.name, diff)
    if action == "token.revoke":
        security.record(
            security.Kind.TOKEN_REVOKED, issuer, f"revoke token {token.name}", "allowed"
        )
    return token


def revoke(name: str, *, issuer) -> ApiToken:
    """Revoke a token by name (the issuer must be able to grant what it holds); revoking a
    revoked token is a 409, an unknown name a 404."""
    token = ApiToken.objects.filter(name=name).first()
    if token is None:
        raise NotFound(f"no token named {name!r}")
    if not token.is_active:
        raise Conflict(f"the token {name!r} is revoked already")
    return update_token(token, {"is_active": False}, issuer=issuer)


def find_token(secret: str) -> ApiToken | None:
    """The active token with this secret (expired ones too: the caller says why it fails)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    return ApiToken.objects.filter(secret_hash=hash_secret(secret), is_active=True).first()


def token_of(request, secret: str) -> ApiToken | None:
    """``find_token``, asked once per request: the rate limiter asks before the API's auth."""
    asked = request.__dict__.get("_portal_token")
    if asked is None or asked[0] != secret:
        asked = request._portal_token = (secret, find_token(secret))
    return asked[1]


def touch(token: ApiToken) -> None:
    """Record use, at most once per API_TOKEN_TOUCH_SECONDS, so reads stay mostly write-free."""
    now = timezone.now()
    interval = timedelta(seconds=settings.API_TOKEN_TOUCH_SECONDS)
    if token.last_used_at is None or now - token.last_used_at >= interval:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now

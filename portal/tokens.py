"""Issuing and checking API tokens."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import InvalidInput
from portal.models import ApiToken, Scope

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


@transaction.atomic
def issue_token(
    name: str,
    scopes: list[str],
    *,
    services: list[str] | None = None,
    expires_in: timedelta | None = None,
    created_by=None,
) -> IssuedToken:
    if not name.strip():
        raise InvalidInput("a token needs a name", fields={"name": "empty"})
    if ApiToken.objects.filter(name=name).exists():
        raise InvalidInput("name taken", fields={"name": f"a token named {name!r} exists"})
    secret = new_secret()
    token = ApiToken.objects.create(
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        secret_hash=hash_secret(secret),
        scopes=check_scopes(scopes),
        services=sorted(set(services or [])),
        expires_at=timezone.now() + expires_in if expires_in else None,
        created_by=created_by,
    )
    return IssuedToken(token=token, secret=secret)


def find_token(secret: str) -> ApiToken | None:
    """The active token with this secret (expired ones too: the caller says why it fails)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    return ApiToken.objects.filter(secret_hash=hash_secret(secret), is_active=True).first()


def touch(token: ApiToken) -> None:
    """Record use, at most once per API_TOKEN_TOUCH_SECONDS, so reads stay mostly write-free."""
    now = timezone.now()
    interval = timedelta(seconds=settings.API_TOKEN_TOUCH_SECONDS)
    if token.last_used_at is None or now - token.last_used_at >= interval:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now

"""From a verified ID token to a person of the portal: their account, their role and their
teams, as the identity provider's groups say at each sign-in (docs/operating.md, "Signing in
through your identity provider").

- The account is found by the provider's issuer and the person's ``sub`` (``OidcIdentity``),
  never by a name: a user name or an e-mail address can change hands. The first sign-in makes
  it, named after ``OIDC_USERNAME_CLAIM`` (``preferred_username``; ``sub`` when missing); a
  name some account has already (in any case) is refused, never taken over -- so nobody
  becomes the local ``admin`` by calling themselves so at the provider.
- Roles: ``OIDC_ROLE_MAP`` (group -> viewer, operator or admin); the role groups a person
  holds become exactly those their groups map to, at every sign-in. Nobody is a viewer by
  default: a person whose groups map to no role is refused, loses the roles and (where the
  provider decides teams) the teams they had, and their other sessions end.
- Teams: ``OIDC_TEAM_MAP`` (group -> team) and ``OIDC_TEAM_PREFIX`` (``team-`` makes the
  group ``team-payments`` the team ``payments``). When either is set, a person's teams become
  exactly those their groups name and the portal has; when neither is, teams are left as the
  admins keep them. The registry changes the memberships, through the hook it registers here
  (``TeamMembership``): this core imports no app.

Every change is audited: ``user.create``, ``user.roles`` (added, removed), ``team.members``
(joined, left), with the actor ``system:sign-in``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal import audit
from portal.auth import Role, system_actor
from portal.models import OidcIdentity

ACTOR = system_actor("sign-in")
ROLES = tuple(role.value for role in Role)


class TeamMembership:
    """The registry's answer to "make these the person's teams" (services.apps registers it):
    ``sync(user, teams, actor)`` returns the teams joined and left, and the names it does not
    know; it audits each change. Until then, teams are left alone."""

    sync: Callable[[Any, frozenset[str], Any], "TeamChanges"] | None = None

    @classmethod
    def register(cls, *, sync) -> None:
        cls.sync = staticmethod(sync)


@dataclass(frozen=True)
class TeamChanges:
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mapping:
    roles: frozenset[str]
    teams: frozenset[str]


@dataclass(frozen=True)
class Outcome:
    """A sign-in's result: the user when let in; ``refusal`` ("no_access", "username_taken",
    "inactive") otherwise, with the name the refusal is about."""

    user: Any = None
    refusal: str = ""
    name: str = ""
    roles: frozenset[str] = frozenset()
    teams: TeamChanges = field(default_factory=TeamChanges)


def groups_of(claims: dict[str, Any]) -> list[str]:
    """The groups claim (``OIDC_GROUPS_CLAIM``; a dotted name walks into objects, as
    ``realm_access.roles``): a list of names, or one name."""
    name = settings.OIDC_GROUPS_CLAIM
    value: Any = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and _storable(item)]
    return []


def _storable(text: str) -> bool:
    """Text PostgreSQL keeps: no NUL, no lone surrogate (what JSON's "\\ud800" reads as)."""
    return not any(ch == "\x00" or "\ud800" <= ch <= "\udfff" for ch in text)


def _text(value: Any, limit: int) -> str:
    """A claim's text as an account keeps it: control and invisible characters taken out (a
    NUL, which PostgreSQL refuses; a zero-width space, which makes a look-alike name),
    other spaces made plain, at most ``limit`` long."""
    if not isinstance(value, str):
        return ""
    kept = (ch if ch.isprintable() else " " if ch.isspace() else "" for ch in value)
    return " ".join("".join(kept).split())[:limit]


def mapping_of(groups: Iterable[str]) -> Mapping:
    groups = list(groups)
    roles = {settings.OIDC_ROLE_MAP[g] for g in groups if g in settings.OIDC_ROLE_MAP}
    teams = {settings.OIDC_TEAM_MAP[g] for g in groups if g in settings.OIDC_TEAM_MAP}
    prefix = settings.OIDC_TEAM_PREFIX
    if prefix:
        teams |= {g[len(prefix) :] for g in groups if g.startswith(prefix) and g != prefix}
    return Mapping(frozenset(roles), frozenset(teams))


def teams_from_groups() -> bool:
    """Whether the provider decides teams (else the admins do, by hand)."""
    return bool(settings.OIDC_TEAM_MAP or settings.OIDC_TEAM_PREFIX)


def username_of(claims: dict[str, Any]) -> str:
    """The name a new account gets, as Django writes it (NFKC: ``admin`` in full-width letters
    is ``admin``, ``ᴬdmin`` is ``Admin``), so the check for a name taken sees the name kept."""
    name = _text(claims.get(settings.OIDC_USERNAME_CLAIM), 300) or _text(claims["sub"], 300)
    return get_user_model().normalize_username(name)[:150]


def sign_in(claims: dict[str, Any]) -> Outcome:
    """The account of the person these (verified) claims describe, with their role and
    teams brought in line with their groups -- or the refusal."""
    groups = groups_of(claims)
    wanted = mapping_of(groups)
    try:
        with transaction.atomic():
            return _sign_in(claims, groups, wanted)
    except IntegrityError:  # the same person's first sign-in twice at once: found now
        with transaction.atomic():
            return _sign_in(claims, groups, wanted)


def _sign_in(claims: dict[str, Any], groups: list[str], wanted: Mapping) -> Outcome:
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    identity = (
        OidcIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is None:
        name = username_of(claims)
        if not wanted.roles:  # no account for someone who may not come in
            return Outcome(refusal="no_access", name=name)
        User = get_user_model()
        if User.objects.filter(username__iexact=name).exists():
            return Outcome(refusal="username_taken", name=name)
        user = User.objects.create_user(name, email=_email(claims))  # no usable password
        identity = OidcIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        audit.record(ACTOR, "user.create", "user", name, {"issuer": issuer, "subject": subject})
    user = identity.user
    if not user.is_active:  # an admin switched the account off: groups do not switch it on
        return Outcome(refusal="inactive", name=user.get_username())
    roles = _set_roles(user, wanted.roles)
    teams = TeamChanges()
    if teams_from_groups() and TeamMembership.sync is not None:
        teams = TeamMembership.sync(user, wanted.teams, ACTOR)
    user.is_staff = bool(roles)
    user.email = _email(claims) or user.email
    user.first_name = _text(claims.get("given_name"), 150) or user.first_name
    user.last_name = _text(claims.get("family_name"), 150) or user.last_name
    if not roles:
        # Every session the person has elsewhere ends at its next request: Django checks a
        # session's hash of the password, which this changes (there is no usable one).
        user.set_unusable_password()
    user.save()
    identity.signed_in_at = timezone.now()
    identity.groups = groups[:200]
    identity.save(update_fields=["signed_in_at", "groups"])
    if not roles:
        return Outcome(refusal="no_access", name=user.get_username(), teams=teams)
    return Outcome(user=user, name=user.get_username(), roles=roles, teams=teams)


def _set_roles(user, roles: frozenset[str]) -> frozenset[str]:
    """Make the role groups the person holds exactly ``roles``; other groups stay."""
    held = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    added, removed = sorted(roles - held), sorted(held - roles)
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    if added:
        user.groups.add(*Group.objects.filter(name__in=added))
    if added or removed:
        audit.record(
            ACTOR, "user.roles", "user", user.get_username(), {"added": added, "removed": removed}
        )
    return roles


def _email(claims: dict[str, Any]) -> str:
    return _text(claims.get("email"), 254)

"""Who is calling, and what they may do.

Two kinds of callers reach the API: pipelines with a bearer token, and people logged in to the
site (their browser session, CSRF-checked on writes). Both become a ``Principal`` holding a set
of scopes and, for tokens, the services they are limited to. Handlers ask ``authorize()``.

People get scopes from their role, which is the name of a Django group they belong to
(``viewer``, ``operator``, ``admin``); superusers are admins and users in no role group are
viewers.

Ownership: every service belongs to a team, and people belong to teams. Everyone reads the
whole estate; an operator *changes* only the services (their configs, checks, checklists) of
their own teams, and admins change everything. A token may be limited to services, to teams,
or both (it then reaches either); what lies outside a token's reach answers 404.
"""

from dataclasses import dataclass
from enum import StrEnum

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer
from ninja.security.session import SessionAuth

from portal import security, tokens
from portal.errors import Forbidden, no_such_service
from portal.models import Scope
from portal.ownership import Ownership


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset({Scope.REGISTRY_READ, Scope.CONFIG_READ, Scope.AUTOMATION_READ}),
    Role.OPERATOR: frozenset(
        {
            Scope.REGISTRY_READ,
            Scope.REGISTRY_WRITE,
            Scope.CONFIG_READ,
            Scope.CONFIG_WRITE,
            Scope.HEALTH_WRITE,
            Scope.AUTOMATION_READ,
            Scope.AUTOMATION_WRITE,
            Scope.CHECKLISTS_WRITE,
            # Who changed what (the audit log); the security events (audit:read) are admins'.
            Scope.CHANGES_READ,
        }
    ),
    Role.ADMIN: frozenset(Scope.values),
}
# The scopes that change something: ownership limits these, never reading.
WRITE_SCOPES = frozenset(
    {
        Scope.REGISTRY_WRITE,
        Scope.CONFIG_WRITE,
        Scope.HEALTH_WRITE,
        Scope.AUTOMATION_WRITE,
        Scope.CHECKLISTS_WRITE,
    }
)


@dataclass(frozen=True)
class Principal:
    kind: str  # "user", "token" or "system"
    name: str
    scopes: frozenset[str]
    services: frozenset[str] | None = None  # its reach; None: every service
    token_id: int | None = None
    user_id: int | None = None
    # What it may change: the teams it owns and their services; None: all within reach.
    teams: frozenset[str] | None = None
    owned_services: frozenset[str] | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_act_on(self, service: str) -> bool:
        """Whether the service is within reach at all (outside it, it does not exist)."""
        return self.services is None or service in self.services

    def may_change(self, service: str) -> bool:
        """Whether its things may be changed: within reach and owned."""
        owned = self.owned_services is None or service in self.owned_services
        return owned and self.may_act_on(service)

    def may_change_team(self, team: str) -> bool:
        return self.teams is None or team in self.teams

    def ownership_denied(self, service: str | None = None, team: str | None = None) -> Forbidden:
        teams = ", ".join(sorted(self.teams or ())) or "none"
        what = f"the service {service!r}" if service else f"the team {team!r}"
        return Forbidden(
            f"{self} changes only what its teams own (teams: {teams}), not {what}",
            **({"service": service} if service else {"team": team}),
            teams=sorted(self.teams or ()),
        )


def system_actor(name: str) -> Principal:
    """The portal itself acting (a command, a task), with every scope."""
    return Principal(kind="system", name=name, scopes=frozenset(Scope.values))


def role_of(user) -> Role:
    if user.is_superuser:
        return Role.ADMIN
    names = {g.name for g in user.groups.all()}
    for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER):
        if role.value in names:
            return role
    return Role.VIEWER


def user_principal(user) -> Principal:
    """A person: their role's scopes; an operator changes only their teams' services."""
    role = role_of(user)
    teams = owned = None
    if role is not Role.ADMIN:
        teams = Ownership.user_teams(user.pk) if role is Role.OPERATOR else frozenset()
        owned = Ownership.team_services(teams) if teams else frozenset()
    return Principal(
        kind="user",
        name=user.get_username(),
        scopes=ROLE_SCOPES[role],
        user_id=user.pk,
        teams=teams,
        owned_services=owned,
    )


def request_principal(request: HttpRequest) -> Principal:
    """The logged-in person as a principal, once per request (the admin asks for every
    permission check; a role costs a query)."""
    principal = getattr(request, "_portal_principal", None)
    if principal is None or principal.user_id != request.user.pk:
        # Attributes of the portal's own on Django's request, which its type does not
        # declare: this cache, ``actor`` (whom the access log names) and ninja's ``auth``.
        principal = request._portal_principal = user_principal(request.user)  # type: ignore[attr-defined]
    return principal


def token_principal(token) -> Principal:
    """A token reaches its services and its teams' services (everything when it lists
    neither), and changes what it reaches; one limited to teams changes only those teams."""
    reach = None
    if token.services or token.teams:
        reach = frozenset(token.services) | Ownership.team_services(token.teams)
    return Principal(
        kind="token",
        name=token.name,
        scopes=frozenset(token.scopes),
        services=reach,
        token_id=token.pk,
        teams=frozenset(token.teams) if token.teams else None,
    )


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        found = tokens.token_of(request, token)
        if found is None:
            security.record(
                security.Kind.TOKEN_INVALID, "anonymous", security.operation_of(request), "refused"
            )
            raise AuthenticationError(401, "the bearer token is not valid")
        if found.is_expired():
            security.record(
                security.Kind.TOKEN_EXPIRED,
                f"token:{found.name}",
                security.operation_of(request),
                "refused",
            )
            raise AuthenticationError(401, f"the token {found.name!r} has expired")
        tokens.touch(found)
        principal = token_principal(found)
        request.actor = principal  # type: ignore[attr-defined]
        return principal


class PortalSessionAuth(SessionAuth):
    """A logged-in person using the API from the browser (CSRF-checked on writes).

    CSRF protects a session: a request that carries none (a pipeline that forgot its token)
    is not checked, so it falls through to 401 with ``WWW-Authenticate: Bearer`` instead of
    being told to reload a page it never had."""

    def _get_key(self, request: HttpRequest) -> str | None:
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        if not request.user.is_authenticated or not request.user.is_active:
            return None
        principal = user_principal(request.user)
        request.actor = principal  # type: ignore[attr-defined]
        return principal


def authorize(
    request: HttpRequest, scope: str, service: str | None = None, *, naming: bool = False
) -> Principal:
    """The caller, if it holds ``scope`` (Forbidden otherwise) and may act on ``service``.
    A service outside a token's reach answers as if it did not exist (404: no leak of what
    lies outside); ``naming`` is for a request that names a service to create, where a 403
    says so without telling whether it exists. A write on a service the caller's teams do
    not own is refused (403: everyone may read it)."""
    principal: Principal = request.auth  # type: ignore[attr-defined]
    if not principal.has_scope(scope):
        raise Forbidden(f"{principal} lacks the scope '{scope}'", required_scope=str(scope))
    if service is not None and not principal.may_act_on(service):
        if naming:
            message = f"{principal} may not act on the service {service!r}"
            raise Forbidden(message, service=service)
        raise no_such_service(service)
    # A service being created is checked on its plan (services.registry.check_reach).
    changes = scope in WRITE_SCOPES and not naming
    if (
        changes
        and service is not None
        and not principal.may_change(service)
        and Ownership.services_named([service])
    ):
        raise principal.ownership_denied(service)
    return principal


def check_ownership(actor, services=(), teams=()) -> None:
    """For a domain write: every named service and team must be the actor's to change
    (Forbidden naming the first that is not). The portal's own actors own everything; an
    actor that is no principal (a name in a log line) is not checked here."""
    if not isinstance(actor, Principal):
        return
    for team in teams:
        if not actor.may_change_team(team):
            raise actor.ownership_denied(team=team)
    denied = [s for s in services if not actor.may_change(s)]
    # A name that exists nowhere is the write's own 404 to tell.
    existing = sorted(Ownership.services_named(denied)) if denied else []
    if existing:
        raise actor.ownership_denied(existing[0])


def check_reach(actor, services=(), teams=(), *, what: str) -> None:
    """For something that acts on, or hears of, the services it selects by name or team (a
    rule's scope, a channel's teams): an actor whose ownership is limited may make it reach
    only what it owns, so it must name its services or teams; "every service" (or a tag, or
    "critical only", across teams) is an admin's to set. Forbidden naming the first miss."""
    if not isinstance(actor, Principal) or actor.teams is None:
        return
    if not services and not teams:
        owned = ", ".join(sorted(actor.teams)) or "none"
        raise Forbidden(
            f"{actor} changes only what its teams own (teams: {owned}); {what} naming no "
            "team and no service reaches every team's services: name yours",
            teams=sorted(actor.teams),
        )
    check_ownership(actor, services, teams)


def authorize_services(request: HttpRequest, scope: str, names) -> Principal:
    """Like authorize(), for a request touching many services at once (a manifest)."""
    principal = authorize(request, scope)
    outside = sorted(n for n in set(names) if not principal.may_act_on(n))
    if outside:
        raise Forbidden(f"{principal} may not act on: {', '.join(outside)}", services=outside)
    return principal

"""Who owns what: which teams a person belongs to, which services a team owns.

The registry knows, and registers its answers when it starts (services.apps): this core
checks ownership (portal.auth, portal.tokens) without importing the registry. Until then
nobody owns anything, and no team exists.
"""

from collections.abc import Callable, Iterable


class Ownership:
    user_teams: Callable[[int], frozenset[str]] = staticmethod(lambda user_id: frozenset())
    team_services: Callable[[Iterable[str]], frozenset[str]] = staticmethod(
        lambda teams: frozenset()
    )
    teams_named: Callable[[Iterable[str]], frozenset[str]] = staticmethod(lambda names: frozenset())
    services_named: Callable[[Iterable[str]], frozenset[str]] = staticmethod(
        lambda names: frozenset()
    )

    @classmethod
    def register(cls, *, user_teams, team_services, teams_named, services_named) -> None:
        cls.user_teams = staticmethod(user_teams)
        cls.team_services = staticmethod(team_services)
        cls.teams_named = staticmethod(teams_named)
        cls.services_named = staticmethod(services_named)

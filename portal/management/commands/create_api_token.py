from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from portal import tokens
from portal.auth import system_actor
from portal.errors import PortalError
from portal.models import Scope


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    help = (
        "Create an API token. The secret is printed alone on the last line and never stored. "
        f"Scopes: {', '.join(Scope.values)}."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            required=True,
            type=_names,
            help="Comma-separated scopes, e.g. registry:read,registry:write",
        )
        parser.add_argument(
            "--services",
            type=_names,
            default=[],
            help="Comma-separated service names to limit the token to",
        )
        parser.add_argument(
            "--teams",
            type=_names,
            default=[],
            help="Comma-separated team names: the token reaches their services too",
        )
        parser.add_argument(
            "--expires-days",
            type=int,
            default=None,
            help="Days until the token expires (default: never)",
        )

    def handle(self, *args, name, scopes, services, teams, expires_days, **options):
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1")
        try:
            issued = tokens.issue_token(
                name,
                scopes,
                services=services,
                teams=teams,
                expires_in=timedelta(days=expires_days) if expires_days else None,
                issuer=system_actor("create_api_token"),
            )
        except PortalError as exc:
            details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message} ({details})" if details else exc.message) from None
        token = issued.token
        self.stderr.write(
            f"Created token {token.name!r} with scopes {', '.join(token.scopes)}"
            + (f", limited to {', '.join(token.services)}" if token.services else "")
            + (f", limited to the teams {', '.join(token.teams)}" if token.teams else "")
            + (f", expiring {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "")
            + ". Copy the secret now; it is not stored:"
        )
        self.stdout.write(issued.secret)

from django.core.management.base import BaseCommand, CommandError

from portal import tokens
from portal.auth import system_actor
from portal.errors import PortalError


class Command(BaseCommand):
    help = "Revoke an API token by name (audited; a security event). It stops working at once."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            token = tokens.revoke(name, issuer=system_actor("revoke_api_token"))
        except PortalError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Revoked token {token.name!r} ({token.prefix}...).")

from django.core.management.base import BaseCommand

from portal import audit, encryption
from portal.auth import system_actor


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret -- configuration secrets, check credentials, and every "
        "other encrypted column an app registered -- with the first key of "
        "CONFIG_ENCRYPTION_KEYS. Run it after putting a new key first; then drop the old key."
    )

    def handle(self, *args, **options):
        counts = encryption.rotate_all()
        audit.record(
            system_actor("rotate_config_secrets"),
            "secrets.rotate_keys",
            "portal",
            "secrets",
            counts,
        )
        for column, count in counts.items():
            self.stdout.write(f"{column}: re-encrypted {count} row(s).")

from django.core.management.base import BaseCommand

from portal import audit
from portal.auth import system_actor
from services import configs


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored configuration secret with the first key of "
        "CONFIG_ENCRYPTION_KEYS. Run it after putting a new key first; then drop the old key."
    )

    def handle(self, *args, **options):
        count = configs.rotate_secrets()
        audit.record(
            system_actor("rotate_config_secrets"),
            "config.rotate_keys",
            "portal",
            "config-secrets",
            {"versions": count},
        )
        self.stdout.write(f"Re-encrypted the secrets of {count} configuration version(s).")

from django.core.management.base import BaseCommand

from healthchecks.watch import selfcheck
from portal.auth import system_actor


class Command(BaseCommand):
    help = (
        "Register the portal itself as the service 'backend' with checks of its database, "
        "Redis, Celery workers and scheduler (idempotent; run after migrate)."
    )

    def handle(self, *args, **options):
        selfcheck.register(system_actor("register_self"))
        self.stdout.write(f"Registered the portal as the service {selfcheck.NAME!r}.")

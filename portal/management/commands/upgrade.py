from django.core.management.base import BaseCommand

from portal import release


class Command(BaseCommand):
    help = (
        "Bring the database to this release, once per start and safe to run from several "
        "pods at once: migrate, register_self, and the first administrator from "
        "DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD when that user does not exist yet."
    )

    def handle(self, *args, **options):
        release.upgrade(self.stdout)

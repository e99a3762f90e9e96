from django.core.management.base import BaseCommand, CommandError

from portal import heartbeats


class Command(BaseCommand):
    help = (
        "Exit 0 if the named heartbeat is fresh, 1 otherwise. Used as the container health "
        "check of beat: its scheduled heartbeat task, run by a worker, writes the row."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--max-age", type=int, default=120, help="Seconds (default 120)")

    def handle(self, *args, name, max_age, **options):
        age = heartbeats.age(name)
        if age is None:
            raise CommandError(f"no heartbeat {name!r} yet")
        if age.total_seconds() > max_age:
            raise CommandError(f"heartbeat {name!r} is {age.total_seconds():.0f}s old")
        self.stdout.write(f"{name}: {age.total_seconds():.1f}s old")

"""What a release does to the database before its processes serve, in one idempotent step
(``manage.py upgrade``: the web pods' init container, compose's one-shot ``migrate``).

Several of them may start at once -- three web pods of a new Deployment, each with its init
container -- so the whole step runs under one PostgreSQL advisory lock: the first migrates,
the others wait and then find nothing left to do. The first administrator is made here too,
from DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD (Django's own createsuperuser variables),
once: when that user exists nothing is changed, so the step can run on every start.
"""

import contextlib
import os
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from portal import audit, database
from portal.auth import system_actor
from portal.checks import PLACEHOLDERS
from portal.models import AuditEntry

# pg_advisory_lock's key for the release step: any constant of the portal's own.
UPGRADE_LOCK = 0x706F7274616C  # "portal"


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """Hold the release lock (PostgreSQL; the embedded SQLite has one process). The wait has
    no deadline: another pod's migration may rightly take minutes."""
    if connection.vendor != "postgresql":
        yield
        return
    database.lift(True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            cursor.execute("SELECT pg_advisory_lock(%s)", [UPGRADE_LOCK])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [UPGRADE_LOCK])
    finally:
        database.lift(False)


def first_admin_from_environment(environ: os._Environ | dict = os.environ) -> str:
    """Make the administrator DJANGO_SUPERUSER_USERNAME names, if set and not there yet; say
    what was done. A password from the examples, or one Django's validators refuse, is
    refused with their reasons (createsuperuser --noinput checks none)."""
    username = environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
    if not username:
        return "first administrator: none asked for (DJANGO_SUPERUSER_USERNAME unset)"
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        return f"first administrator: {username!r} exists, left as it is"
    if made_before(username):
        return (
            f"first administrator: {username!r} was made once and has been deleted since; "
            "not made again (remove DJANGO_SUPERUSER_*, or name someone else)"
        )
    password = environ.get("DJANGO_SUPERUSER_PASSWORD", "")
    if not password:
        raise CommandError("DJANGO_SUPERUSER_PASSWORD must be set with DJANGO_SUPERUSER_USERNAME")
    if password.strip() in PLACEHOLDERS:  # a Secret from a file keeps its newline
        raise CommandError(
            "DJANGO_SUPERUSER_PASSWORD is the placeholder the examples ship: set a real one"
        )
    try:
        validate_password(password, User(username=username))
    except ValidationError as exc:
        raise CommandError("DJANGO_SUPERUSER_PASSWORD: " + " ".join(exc.messages)) from None
    email = environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
    user = User.objects.create_superuser(username=username, email=email, password=password)
    audit.record(system_actor("upgrade"), "user.create", "user", username, {"superuser": True})
    return f"first administrator: {user.get_username()!r} made (an admin: every role's rights)"


def made_before(username: str) -> bool:
    """Did an earlier start make this administrator? Then its absence is someone's deletion
    (an administrator who left): the Secret, still in the cluster, must not bring the account
    back at the next rollout with the password its holder knew."""
    return AuditEntry.objects.filter(
        actor=str(system_actor("upgrade")), action="user.create", target_type="user",
        target=username,
    ).exists()  # fmt: skip


def upgrade(stdout) -> None:
    """Migrations, the portal's own service ``backend`` and its checks, the first
    administrator: in that order, one process at a time."""
    with one_at_a_time():
        call_command("migrate", interactive=False, stdout=stdout)
        call_command("register_self", stdout=stdout)
        stdout.write(first_admin_from_environment())

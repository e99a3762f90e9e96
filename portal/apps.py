from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate
from django.utils.autoreload import file_changed

from portal import database, devreload


def lift_statement_timeout(sender, using="default", **kwargs) -> None:
    """Migrations may rewrite big tables for minutes: DB_STATEMENT_TIMEOUT guards requests
    and tasks, not `migrate`, so its session runs without one, and the client waits for the
    answer as long as it takes (portal.database)."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        database.lift(True)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")


def restore_round_trip_limit(sender, **kwargs) -> None:
    """After the migrations, the process waits for the server within its bound again."""
    database.lift(False)


def on_login_failed(sender, credentials, request=None, **kwargs):
    """Every failed login is a security event and counts towards the throttle; an attempt
    refused by the throttle itself is recorded as throttled (portal.backends), nothing more."""
    from portal import security

    if getattr(request, "login_throttled", False):
        return

    username = str(credentials.get("username", ""))[:150]
    security.record(security.Kind.LOGIN_FAILED, username, security.operation_of(request), "refused")
    security.login_failed(security.login_origin(request, username))


def on_logged_in(sender, request=None, user=None, **kwargs):
    """A sign-in forgives its pair's failures and gives the browser the name's device
    cookie (portal.security): its own count from then on, whoever guesses from its address."""
    from portal import security

    if request is not None and user is not None:
        security.login_succeeded(request, user.get_username())


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        pre_migrate.connect(lift_statement_timeout, dispatch_uid="portal-lift-statement-timeout")
        post_migrate.connect(restore_round_trip_limit, dispatch_uid="portal-restore-limit")
        user_login_failed.connect(on_login_failed, dispatch_uid="portal-login-failed")
        user_logged_in.connect(on_logged_in, dispatch_uid="portal-logged-in")
        from portal import sessions

        # A session's sign-in time and last use, for its timeouts (portal.sessions).
        user_logged_in.connect(sessions.on_logged_in, dispatch_uid="portal-session-started")
        from portal import checks  # noqa: F401  (registers the portal's system checks)

        # runserver's reloader: the checkout's code restarts it, an install never does.
        file_changed.connect(devreload.ignore_installations, dispatch_uid="portal-devreload")

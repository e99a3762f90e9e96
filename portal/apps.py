from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import pre_migrate


def lift_statement_timeout(sender, using="default", **kwargs) -> None:
    """Migrations may rewrite big tables for minutes: DB_STATEMENT_TIMEOUT guards requests
    and tasks, not `migrate`, so its session runs without one."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        pre_migrate.connect(lift_statement_timeout, dispatch_uid="portal-lift-statement-timeout")

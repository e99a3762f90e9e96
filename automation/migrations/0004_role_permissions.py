"""The role groups get the permissions of maintenance windows (portal.roles)."""

from django.db import migrations

from portal.roles import grant_role_permissions


def grant(apps, schema_editor):
    grant_role_permissions(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0003_alert_silenced"),
        ("services", "0005_maintenance_window"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

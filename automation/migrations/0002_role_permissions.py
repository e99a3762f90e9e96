"""The role groups get the permissions of the automation's models (portal.roles)."""

from django.db import migrations

from portal.roles import grant_role_permissions


def grant(apps, schema_editor):
    grant_role_permissions(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0001_initial"),
        ("portal", "0003_role_permissions"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

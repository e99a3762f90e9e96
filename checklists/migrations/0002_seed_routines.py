"""The seed's maintenance routines (checklists.routines), every item of them, as data the
admin can edit; and the role groups' permissions on them."""

from django.db import migrations

from checklists.routines import install
from portal.roles import grant_role_permissions


def seed(apps, schema_editor):
    install(apps)


def grant(apps, schema_editor):
    grant_role_permissions(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("checklists", "0001_initial"),
        ("automation", "0007_firing_episodes"),
    ]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]

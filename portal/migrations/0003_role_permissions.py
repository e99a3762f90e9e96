"""The role groups get the admin permissions their roles promise (portal.roles)."""

from django.db import migrations

from portal.roles import grant_role_permissions


def grant(apps, schema_editor):
    grant_role_permissions(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_role_groups"),
        ("services", "0004_config_schema_restrict"),
        ("healthchecks", "0004_check_name_validated"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

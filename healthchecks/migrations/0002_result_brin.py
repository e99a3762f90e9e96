"""A BRIN index on raw results' time: a few kilobytes for millions of append-only rows,
used by pruning, rollups and "results in the last minute". PostgreSQL only."""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS checkresult_at_brin ON healthchecks_checkresult "
            "USING brin (at) WITH (pages_per_range = 32)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS checkresult_at_brin")


class Migration(migrations.Migration):
    dependencies = [("healthchecks", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]

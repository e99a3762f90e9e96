"""Each enabled check's next due time moves to a table of its own, which the dispatcher
rewrites on every claim, so the checks table stays small for the reads that use it."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def copy_due_times(apps, schema_editor):
    HealthCheck = apps.get_model("healthchecks", "HealthCheck")
    CheckSchedule = apps.get_model("healthchecks", "CheckSchedule")
    rows = HealthCheck.objects.filter(enabled=True).values_list("id", "next_due_at")
    CheckSchedule.objects.bulk_create(
        (CheckSchedule(health_check_id=pk, next_due_at=due) for pk, due in rows.iterator()),
        batch_size=1000,
    )


def copy_back(apps, schema_editor):
    HealthCheck = apps.get_model("healthchecks", "HealthCheck")
    CheckSchedule = apps.get_model("healthchecks", "CheckSchedule")
    for pk, due in CheckSchedule.objects.values_list("health_check_id", "next_due_at"):
        HealthCheck.objects.filter(pk=pk).update(next_due_at=due)


class Migration(migrations.Migration):
    dependencies = [
        ("healthchecks", "0002_result_brin"),
    ]

    operations = [
        migrations.CreateModel(
            name="CheckSchedule",
            fields=[
                (
                    "health_check",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="schedule",
                        serialize=False,
                        to="healthchecks.healthcheck",
                    ),
                ),
                ("next_due_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RunPython(copy_due_times, copy_back),
        migrations.RemoveIndex(
            model_name="healthcheck",
            name="check_due",
        ),
        migrations.AddIndex(
            model_name="checkschedule",
            index=models.Index(fields=["next_due_at"], name="schedule_due"),
        ),
        migrations.RemoveField(
            model_name="healthcheck",
            name="next_due_at",
        ),
    ]

"""The portal's own checks name their callables by module path: healthchecks.builtin moved
to healthchecks.watch.builtin (health cut into engine, reads, watch and web)."""

from django.db import migrations
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

OLD, NEW = "healthchecks.builtin.", "healthchecks.watch.builtin."


def forwards(apps, schema_editor):
    HealthCheck = apps.get_model("healthchecks", "HealthCheck")
    HealthCheck.objects.filter(kind="python", target__startswith=OLD).update(
        target=Concat(Value(NEW), Substr(F("target"), len(OLD) + 1))
    )


def backwards(apps, schema_editor):
    HealthCheck = apps.get_model("healthchecks", "HealthCheck")
    HealthCheck.objects.filter(kind="python", target__startswith=NEW).update(
        target=Concat(Value(OLD), Substr(F("target"), len(NEW) + 1))
    )


class Migration(migrations.Migration):
    dependencies = [("healthchecks", "0010_service_predictions")]
    operations = [migrations.RunPython(forwards, backwards)]

"""Minimal valid registry objects. Seeded, so failures repeat."""

import json
from pathlib import Path

import factory
import factory.random
from factory.django import DjangoModelFactory

from services.models import Dependency, Service, Team

factory.random.reseed_random("service-portal")


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"team-{n}")


class ServiceFactory(DjangoModelFactory):
    class Meta:
        model = Service

    name = factory.Sequence(lambda n: f"svc-{n}")
    team = factory.SubFactory(TeamFactory)


class DependencyFactory(DjangoModelFactory):
    class Meta:
        model = Dependency

    service = factory.SubFactory(ServiceFactory)
    depends_on = factory.SubFactory(ServiceFactory)


def make_check(service=None, next_due_at=None, **fields):
    """A check with its state row and, when enabled, its schedule (due now unless
    ``next_due_at`` says otherwise), as the registry creates them."""
    from django.utils import timezone

    from healthchecks.models import CheckSchedule, CheckState, HealthCheck

    fields.setdefault("name", f"check-{HealthCheck.objects.count() + 1}")
    fields.setdefault("kind", "http")
    fields.setdefault("target", "http://127.0.0.1:9/")
    check = HealthCheck.objects.create(service=service or ServiceFactory(), **fields)
    CheckState.objects.create(health_check=check)
    if check.enabled:
        CheckSchedule.objects.create(health_check=check, next_due_at=next_due_at or timezone.now())
    return check


def next_due(check):
    """The check's next due time as stored now (None: not scheduled)."""
    from healthchecks.models import CheckSchedule

    row = CheckSchedule.objects.filter(health_check=check).first()
    return row.next_due_at if row else None


# The seed's example ServiceConfigSchema (../shared/seed), as written.
SEED_SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "seed_schema.json").read_text())


def seed_schema_with_secret() -> dict:
    """The seed's schema plus an optional secret field, ``db_password``."""
    return {
        **SEED_SCHEMA,
        "field_types": {**SEED_SCHEMA["field_types"], "db_password": "str"},
        "optional_fields": [*SEED_SCHEMA["optional_fields"], "db_password"],
        "secret_fields": ["db_password"],
    }

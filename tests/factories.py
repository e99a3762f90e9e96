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


def make_check(service=None, **fields):
    """A check with its state row, as the registry creates them."""
    from healthchecks.models import CheckState, HealthCheck

    fields.setdefault("name", f"check-{HealthCheck.objects.count() + 1}")
    fields.setdefault("kind", "http")
    fields.setdefault("target", "http://127.0.0.1:9/")
    check = HealthCheck.objects.create(service=service or ServiceFactory(), **fields)
    CheckState.objects.create(health_check=check)
    return check


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

"""Minimal valid registry objects. Seeded, so failures repeat."""

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

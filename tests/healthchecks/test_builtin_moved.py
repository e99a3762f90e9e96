"""healthchecks.builtin moved to healthchecks.watch.builtin: the portal's own checks stored
under the old path are rewritten by a migration, so they keep running after the upgrade."""

import importlib

import pytest
from django.apps import apps

from healthchecks.models import HealthCheck
from tests.factories import make_check

pytestmark = pytest.mark.django_db
moved = importlib.import_module("healthchecks.migrations.0011_builtin_checks_moved")


def test_the_portals_own_checks_are_rewritten_to_the_new_path():
    old = make_check(kind="python", target="healthchecks.builtin.database")
    other = make_check(kind="python", target="myapp.health.database")
    moved.forwards(apps, None)
    assert HealthCheck.objects.get(pk=old.pk).target == "healthchecks.watch.builtin.database"
    assert HealthCheck.objects.get(pk=other.pk).target == "myapp.health.database"
    moved.backwards(apps, None)
    assert HealthCheck.objects.get(pk=old.pk).target == "healthchecks.builtin.database"

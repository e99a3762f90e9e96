"""The demo `make run` loads: it must load on a fresh database and again on the next run."""

import io

import pytest
from django.core.management import call_command

from manifest.demo import DEMO_LIFECYCLE, DEMO_MANIFEST
from services.models import Service

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_it_loads_and_loads_again(settings):
    settings.DEMO_BASE_URL = "http://127.0.0.1:8123"
    call_command("load_demo", stdout=io.StringIO())
    call_command("load_demo", stdout=io.StringIO())
    assert Service.objects.count() == len(DEMO_MANIFEST["services"])
    statuses = dict(Service.objects.values_list("name", "lifecycle_status"))
    assert {name: steps[-1] for name, steps in DEMO_LIFECYCLE.items()} == {
        name: statuses[name] for name in DEMO_LIFECYCLE
    }

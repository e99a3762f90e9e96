"""The README ("Pages"): beyond 200 services the dependency map draws teams. Through Django's
full stack as a viewer, with 200 services and then 201 (test_map.py proves the drawing by
team itself, with the limit lowered)."""

import pytest

from services.models import Service
from tests.factories import TeamFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_the_map_draws_200_services_and_teams_beyond(client, bob):
    teams = [TeamFactory(name=f"team-{i}") for i in range(4)]
    Service.objects.bulk_create(Service(name=f"svc-{i:03d}", team=teams[i % 4]) for i in range(200))
    client.force_login(bob)
    page = client.get("/map/").content.decode()
    assert page.count('class="node') == 200 and "drawn by team" not in page
    Service.objects.create(name="svc-200", team=teams[0])
    page = client.get("/map/").content.decode()
    assert "drawn by team" in page and 'data-name="svc-000"' not in page
    assert "team-0 (51" in page  # its 51 services in one box

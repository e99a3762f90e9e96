"""The dependency map: a layered layout whose edges all point down, the page with its team
filter and impact data, and teams drawn instead of services beyond the limit."""

import itertools
import re

import pytest

from pages import dependency_map, graph_layout
from services.models import Dependency, DependencyKind
from tests.factories import ServiceFactory, TeamFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_every_edge_points_down_and_a_row_holds_no_overlap():
    edges = [
        ("web", "api", "hard"),
        ("api", "db", "hard"),
        ("api", "cache", "soft"),
        ("jobs", "db", "hard"),
        ("web", "cdn", "soft"),
    ]
    nodes = ["web", "api", "db", "cache", "jobs", "cdn"]
    boxes, width, height = graph_layout.layout(nodes, edges)
    for service, depends_on, _ in edges:
        assert boxes[service].y < boxes[depends_on].y, (service, depends_on)
    rows: dict[float, list] = {}
    for box in boxes.values():
        rows.setdefault(box.y, []).append(box)
    for members in rows.values():
        members.sort(key=lambda b: b.x)
        for left, right in itertools.pairwise(members):
            assert left.x + left.width <= right.x
    assert all(b.x + b.width <= width and b.y + 28 <= height for b in boxes.values())


@pytest.fixture
def estate():
    core, edge = TeamFactory(name="core"), TeamFactory(name="edge")
    db = ServiceFactory(name="db", team=core)
    api = ServiceFactory(name="api", team=core)
    web = ServiceFactory(name="web", team=edge)
    ServiceFactory(name="lonely", team=edge)
    Dependency.objects.create(service=api, depends_on=db, kind=DependencyKind.HARD)
    Dependency.objects.create(service=web, depends_on=api, kind=DependencyKind.SOFT)


def test_the_map_draws_services_edges_and_what_a_failure_takes_down(client, bob, estate):
    client.force_login(bob)
    page = client.get("/map/").content.decode()
    assert page.count('class="node') == 4
    assert 'data-name="db" data-down="api" data-degraded="web"' in page
    assert 'class="edge edge-soft"' in page and 'stroke-dasharray="5 4"' in page
    assert "web needs api (soft)" in page
    core = client.get("/map/?team=core").content.decode()
    assert 'data-name="lonely"' not in core
    assert 'class="node faded" data-name="web"' in core  # a neighbour from another team


def test_beyond_the_limit_teams_are_drawn(client, bob, estate, monkeypatch):
    monkeypatch.setattr(dependency_map, "MAP_LIMIT", 3)
    ServiceFactory(name="cron", team=TeamFactory(name="operations"))  # a row with core
    client.force_login(bob)
    page = client.get("/map/").content.decode()
    assert "core (2, 2 not healthy)" in page and "edge (2, 2 not healthy)" in page
    assert "drawn by team" in page
    assert "edge</a> needs <a" in page and "(soft)" in page  # web (edge) needs api (core)
    rows: dict[str, list[tuple[float, float]]] = {}
    pattern = r'<rect class="st-\w+" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"'
    for x, y, w in re.findall(pattern, page):
        rows.setdefault(y, []).append((float(x), float(w)))
    for boxes in rows.values():  # labels sized into the layout: no box over its neighbour
        for (x1, w1), (x2, _) in itertools.pairwise(sorted(boxes)):
            assert x1 + w1 <= x2
    assert 'data-name="db"' in client.get("/map/?team=core").content.decode()

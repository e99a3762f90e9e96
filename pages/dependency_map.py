"""The dependency map: every service as a box coloured by its status, hard edges solid and
soft ones dashed, laid out on the server (pages.graph_layout); a click shows what a failure
would take down (static/js/map.js reads the impact written on each box). Beyond
MAP_LIMIT services, or on request, teams are drawn instead of services."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from healthchecks.models import ServiceHealth
from healthchecks.status import Status
from pages import graph_layout
from services.graph import DependencyGraph
from services.models import Dependency, Service, Team

MAP_LIMIT = 200
# Status in a mark as well as a colour (never colour alone).
MARKS = {"healthy": "✓", "degraded": "!", "unhealthy": "✗", "maintenance": "⏸", "unknown": "?"}
WORST = [Status.UNHEALTHY, Status.DEGRADED, Status.UNKNOWN, Status.MAINTENANCE, Status.HEALTHY]


def _statuses() -> dict[str, int]:
    return dict(ServiceHealth.objects.values_list("service__name", "status"))


def _service_map(team: str) -> dict:
    services = dict(Service.objects.values_list("name", "team__name"))
    edges = list(Dependency.objects.values_list("service__name", "depends_on__name", "kind"))
    if team:
        # The team's services, and what they need and what needs them (faded).
        own = {n for n, t in services.items() if t == team}
        near = {d for s, d, _ in edges if s in own} | {s for s, d, _ in edges if d in own}
        shown = own | near
        edges = [(s, d, k) for s, d, k in edges if s in shown and d in shown]
    else:
        own = shown = set(services)
    statuses = _statuses()
    graph = DependencyGraph.from_edges(shown, edges)
    boxes, width, height = graph_layout.layout(sorted(shown), edges)
    nodes = []
    for name, box in boxes.items():
        impact = graph.impact(name)
        nodes.append(
            {
                "name": name,
                "box": box,
                "status": Status(statuses.get(name, Status.UNKNOWN)).label,
                "team": services[name],
                "faded": name not in own,
                "down": " ".join(i["service"] for i in impact if i["effect"] == "down"),
                "degraded": " ".join(i["service"] for i in impact if i["effect"] != "down"),
                "url_name": name,
                "mark": MARKS[Status(statuses.get(name, Status.UNKNOWN)).label],
            }
        )
    return {"nodes": nodes, "edges": _lines(boxes, edges), "width": width, "height": height}


def _team_map() -> dict:
    """One box per team (its worst status, its count); an edge where one team's services
    need another's. Teams may need each other both ways: the rows come from an acyclic
    subset of those edges, the lines drawn are the ones between rows, and every pair is
    listed in words beside the drawing."""
    teams = dict(Service.objects.values_list("name", "team__name"))
    statuses = _statuses()
    members: dict[str, list[int]] = {}
    for name, team in teams.items():
        members.setdefault(team, []).append(statuses.get(name, Status.UNKNOWN))
    kinds: dict[tuple[str, str], str] = {}
    for s, d, k in Dependency.objects.values_list("service__name", "depends_on__name", "kind"):
        a, b = teams[s], teams[d]
        if a != b:
            kinds[(a, b)] = "hard" if k == "hard" or kinds.get((a, b)) == "hard" else k
    label = {}
    for team, found in members.items():
        unwell = sum(1 for s in found if s != Status.HEALTHY)
        label[team] = f"{team} ({len(found)}, {unwell} not healthy)"
    edges = [(label[a], label[b], k) for (a, b), k in sorted(kinds.items())]
    # Boxes sized by their labels, so none overlaps its neighbour.
    boxes, width, height = graph_layout.layout(sorted(label.values()), _acyclic(edges))
    nodes = []
    for team, found in members.items():
        worst = min(found, key=WORST.index)
        nodes.append(
            {
                "name": label[team],
                "box": boxes[label[team]],
                "status": Status(worst).label,
                "team": team,
                "faded": False,
                "down": "",
                "degraded": "",
                "url_name": "",
                "mark": MARKS[Status(worst).label],
            }
        )
    drawn = [e for e in edges if boxes[e[0]].y != boxes[e[1]].y]
    return {
        "nodes": nodes,
        "edges": _lines(boxes, drawn),
        "width": width,
        "height": height,
        "grouped": True,
        "team_edges": [(a, b, k) for (a, b), k in sorted(kinds.items())],
    }


def _acyclic(edges: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    kept: list[tuple[str, str, str]] = []
    needs: dict[str, set[str]] = {}

    def reaches(a: str, b: str) -> bool:
        stack, seen = [a], set()
        while stack:
            n = stack.pop()
            if n == b:
                return True
            if n not in seen:
                seen.add(n)
                stack.extend(needs.get(n, ()))
        return False

    for a, b, k in sorted(edges):
        if not reaches(b, a):
            kept.append((a, b, k))
            needs.setdefault(a, set()).add(b)
    return kept


def _lines(boxes: dict, edges) -> list[dict]:
    lines = []
    for s, d, kind in edges:
        if s in boxes and d in boxes:
            (x1, y1), (x2, y2) = boxes[s].centre, boxes[d].centre
            top, bottom = (y1 + 14, y2 - 14) if y2 > y1 else (y1 - 14, y2 + 14)
            lines.append(
                {"x1": x1, "y1": top, "x2": x2, "y2": bottom, "kind": kind, "from": s, "to": d}
            )
    return lines


@login_required
@require_GET
def dependency_map(request):
    team = request.GET.get("team", "")
    count = Service.objects.count()
    grouped = request.GET.get("group") == "team" or (count > MAP_LIMIT and not team)
    drawing = _team_map() if grouped else _service_map(team)
    context = {
        **drawing,
        "team": team,
        "teams": Team.objects.order_by("name").values_list("name", flat=True),
        "count": count,
        "limit": MAP_LIMIT,
        "grouped": grouped,
    }
    return render(request, "pages/map.html", context)

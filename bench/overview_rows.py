"""Overview rows benchmark: what drawing one row of the overview's table costs, through the
template engine as the overview did before e8a871a, and as one escaped string in Python as
``pages.service_rows`` draws it now (docs/decisions.md, "The overview draws its rows in
Python").

The same 100 rows both ways, in-process, no database: the template's row (its markup kept
below, as it was) gets model instances as its context did -- a service with its team, health,
prefetched dependency links and tags -- and the Python row the plain values the overview
reads now. The strip, built the same way for both, is made once beforehand. Milliseconds a
row, over repeated renders of the 100 (min and median).
"""

from datetime import UTC, datetime, timedelta

from bench import support

NAME = "overview_rows"
DESCRIPTION = "one overview row drawn by the template engine and in Python, ms a row"
ROWS = 100
RENDERS = {"full": 200, "quick": 20}

# The overview's row as the template drew it (templates/pages/overview.html before e8a871a).
TEMPLATE_ROW = """{% load portal %}{% for row in rows %}{% with service=row.service %}
<tr data-service="{{ service.name }}">
<td><a href="{% url 'pages:service' service.name %}"><strong>{{ service.name }}</strong></a>{% if service.display_name %}<br><small>{{ service.display_name }}</small>{% endif %}</td>
<td>{{ service.team.name }}</td>
<td>{% with status=service.health.get_status_display|default:"unknown" reason=service.health.reason %}<span class="badge health health-{{ status }}"{% if reason %} title="{{ reason }}"{% endif %}>{{ status }}</span>{% endwith %}{% if service.health.reason %}<br><small class="reason">{{ service.health.reason }}</small>{% endif %}{% if service.health.since %}<br><small class="since">since {{ service.health.since|date:"Y-m-d H:i" }}</small>{% endif %}</td>
<td>{{ row.strip }}</td>
<td>{% if row.uptime_24h is not None %}{{ row.uptime_24h|percent }}{% else %}—{% endif %} / {% if row.uptime_30d is not None %}{{ row.uptime_30d|percent }}{% else %}—{% endif %}</td>
<td>{% if row.p95_ms is not None %}<span title="the bound of its latency bucket">≤ {{ row.p95_ms|floatformat:0 }} ms</span>{% else %}—{% endif %}</td>
<td>{% if service.last_check %}{{ service.last_check|date:"H:i:s" }}{% else %}never{% endif %}</td>
<td><span class="badge lifecycle lifecycle-{{ service.lifecycle_status }}">{{ service.lifecycle_status }}</span></td>
<td>{% if service.is_critical %}<span class="critical">critical</span>{% endif %}</td>
<td>{{ service.deployed_version|default:"—" }}</td>
<td>{% for link in service.dependency_links.all %}<span class="dep dep-{{ link.kind }}">{{ link.depends_on.name }}</span> {% empty %}—{% endfor %}</td>
<td>{% for tag in service.tags.all %}<span class="tag">{{ tag.name }}</span> {% endfor %}</td>
</tr>
{% endwith %}{% endfor %}"""  # noqa: E501 - markup kept as it was


def _prefetched(model, items):
    """A queryset that answers from ``items``, as prefetch_related leaves one."""
    from django.db.models.query import QuerySet

    queryset = QuerySet(model)
    queryset._result_cache, queryset._prefetch_done = list(items), True
    return queryset


def the_rows(now: datetime) -> tuple[list[dict], list[dict]]:
    """(the template's context rows, pages.service_rows' rows), the same 100 services."""
    from healthchecks.models import ServiceHealth
    from healthchecks.status import Status
    from pages import charts
    from services.models import Dependency, Service, Tag, Team

    strip = charts.status_strip("x", [Status.HEALTHY] * 20 + [Status.DEGRADED] * 4, now)
    team = Team(id=1, name="core")
    for_template, for_python = [], []
    for i in range(ROWS):
        status, reason = (Status.DEGRADED, "slow answers: http") if i % 3 else (Status.HEALTHY, "")
        service = Service(
            id=i + 1,
            name=f"service-{i:03d}",
            display_name=f"Service {i}",
            team=team,
            lifecycle_status="running",
            is_critical=bool(i % 2),
            deployed_version="1.2.3",
        )
        service.last_check = now
        service.health = ServiceHealth(service=service, status=status, reason=reason, since=now)
        links = [
            Dependency(service=service, depends_on=Service(id=1000 + j, name=f"dep-{j}"))
            for j in range(2)
        ]
        tags = [Tag(id=j + 1, name=f"tag-{j}") for j in range(2)]
        service._prefetched_objects_cache = {
            "dependency_links": _prefetched(Dependency, links),
            "tags": _prefetched(Tag, tags),
        }
        figures = {"uptime_24h": 0.999, "uptime_30d": 0.9987, "p95_ms": 123.0}
        for_template.append({"service": service, "strip": strip, **figures})
        for_python.append(
            {
                "row": {
                    "name": service.name,
                    "display_name": service.display_name,
                    "team__name": team.name,
                    "health": Status(status).label,
                    "health__reason": reason,
                    "health__since": now,
                    "last_check": now,
                    "lifecycle_status": "running",
                    "is_critical": service.is_critical,
                    "deployed_version": "1.2.3",
                },
                "href": f"/services/{service.name}/",
                "strip": strip,
                "uptimes": (0.999, 0.9987),
                "p95_ms": 123.0,
                "deps": [{"kind": "hard", "service": f"dep-{j}"} for j in range(2)],
                "tags": [tag.name for tag in tags],
            }
        )
    return for_template, for_python


def run(options) -> None:
    url = support.database_url("postgres")
    support.setup_django(url)
    from django.template import engines

    from pages import service_rows

    now = datetime.now(UTC) - timedelta(minutes=5)
    for_template, for_python = the_rows(now)
    template = engines["django"].from_string(TEMPLATE_ROW)

    def by_template():
        return template.render({"rows": for_template})

    def in_python():
        return "".join(service_rows.row_html(**row) for row in for_python)

    assert by_template().count("<tr ") == in_python().count("<tr ") == ROWS
    support.settle(options.wait_idle)
    renders = RENDERS["quick" if options.quick else "full"]
    measured = {}
    with support.cpu_usage() as cpu:
        for name, draw in (("template", by_template), ("python", in_python)):
            samples = [support.timed(draw)[0] / ROWS for _ in range(renders)]
            measured[name] = {
                "min_ms": round(min(samples) * 1000, 3),
                "median_ms": round(support.percentile(samples, 50) * 1000, 3),
            }
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "rows": ROWS,
        "renders": renders,
        "ms_a_row": measured,
        "python_share_of_template": round(
            measured["python"]["median_ms"] / measured["template"]["median_ms"], 2
        ),
        "machine_busy_pct": cpu["machine_busy_pct"],
    }
    support.finish(NAME, results, report, quick=options.quick, smoke=f"({renders} renders)")


def report(results: dict) -> None:
    support.print_table(
        f"One overview row, ms ({results['rows']} rows x {results['renders']} renders)",
        ["drawn by", "min", "median"],
        [[name, f["min_ms"], f["median_ms"]] for name, f in results["ms_a_row"].items()],
    )
    print(
        f"Python / template (median): {results['python_share_of_template']}; "
        f"machine busy {results['machine_busy_pct']} %"
    )

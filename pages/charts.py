"""Charts drawn on the server as SVG: no script, no network, nothing the CSP must allow.

Each function is pure: data in, markup out (text escaped). Colours come from CSS classes
(``st-healthy`` ...), and every mark has a <title> in words, so a status is never told by
colour alone and a screen reader or a hover reads it.
"""

from datetime import datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from healthchecks.status import Status

WIDTH, HEIGHT = 720, 160
PAD_LEFT, PAD_BOTTOM = 48, 20


def _x(at: datetime, start: datetime, end: datetime, width: float) -> float:
    span = (end - start).total_seconds() or 1
    return PAD_LEFT + (at - start).total_seconds() / span * (width - PAD_LEFT)


# (when, version, verification state or "") of each deployment in the chart's range.
Release = tuple[datetime, str, str]


def release_marks(releases: list[Release], start, end, top: float, bottom: float) -> list[str]:
    """A vertical mark per deployment in range, titled with its version and verdict, so a
    regression is seen beside the release that brought it."""
    marks = []
    for at, version, verdict in releases:
        if not start <= at <= end:
            continue
        x = _x(at, start, end, WIDTH)
        state = f", verification {verdict}" if verdict else ""
        title = f"deployment {version} at {at:%Y-%m-%d %H:%M} UTC{state}"
        marks.append(
            f'<line class="release release-{escape(verdict or "none")}" x1="{x:.1f}" '
            f'y1="{top}" x2="{x:.1f}" y2="{bottom}"><title>{escape(title)}</title></line>'
        )
    return marks


def status_timeline(
    spans: list[tuple[datetime, datetime, str]], start, end, releases: list[Release] = ()
) -> SafeString:
    """One band of coloured segments, one per status span, each titled in words, with a mark
    per deployment."""
    width, height = WIDTH, 28
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Status timeline">'
    ]
    for begin, finish, word in spans:
        x1, x2 = _x(begin, start, end, width), _x(finish, start, end, width)
        title = f"{word} from {begin:%Y-%m-%d %H:%M} to {finish:%Y-%m-%d %H:%M} UTC"
        parts.append(
            f'<rect class="st-{escape(word)}" x="{x1:.1f}" y="2" width="{max(x2 - x1, 0.8):.1f}" '
            f'height="{height - 4}"><title>{escape(title)}</title></rect>'
        )
    parts += release_marks(list(releases), start, end, 0, height)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def response_times(
    series: dict[str, list[tuple[datetime, float]]], start, end, releases: list[Release] = ()
) -> SafeString:
    """A line per check (ms over time), with the top of the scale labelled, and a mark with
    the version at each deployment."""
    points = [ms for rows in series.values() for _, ms in rows if ms is not None]
    top = max(points, default=0) * 1.1 or 1
    plot = HEIGHT - PAD_BOTTOM
    parts = [
        f'<svg class="chart latency" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Response time per check">',
        f'<text class="axis" x="2" y="12">{top:.0f} ms</text>',
        f'<text class="axis" x="2" y="{plot}">0</text>',
        f'<line class="axis" x1="{PAD_LEFT}" y1="{plot}" x2="{WIDTH}" y2="{plot}"/>',
        f'<text class="axis" x="{PAD_LEFT}" y="{HEIGHT - 4}">{start:%Y-%m-%d %H:%M}</text>',
        f'<text class="axis" x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end">'
        f"{end:%Y-%m-%d %H:%M} UTC</text>",
    ]
    for n, (name, rows) in enumerate(sorted(series.items())):
        points = [
            (_x(at, start, end, WIDTH), plot - ms / top * (plot - 8))
            for at, ms in rows
            if ms is not None
        ]
        if len(points) == 1:  # one bucket so far (a new check): a line of one point is invisible
            x, y = points[0]
            parts.append(
                f'<circle class="dot line-{n % 6}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(name)}</title></circle>"
            )
        elif points:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline class="line line-{n % 6}" points="{coords}">'
                f"<title>{escape(name)}</title></polyline>"
            )
    parts += release_marks(list(releases), start, end, 14, plot)
    for at, version, _ in releases:
        if start <= at <= end:
            x = _x(at, start, end, WIDTH)
            label = escape(version[:20])
            parts.append(f'<text class="axis release-label" x="{x + 2:.1f}" y="24">{label}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def uptime_bars(days: list[dict]) -> SafeString:
    """One bar a day: full height, coloured by that day's uptime, titled with it."""
    count = len(days) or 1
    step = WIDTH / count
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {WIDTH} 34" role="img" '
        f'aria-label="Uptime per day, last {count} days">'
    ]
    for i, day in enumerate(days):
        uptime = day["uptime"]
        if uptime is None:
            word, text = "unknown", "no results"
        else:
            word = "healthy" if uptime >= 0.999 else "degraded" if uptime >= 0.99 else "unhealthy"
            text = f"{uptime * 100:.2f} % of {day['results']} results"
        parts.append(
            f'<rect class="st-{word}" x="{i * step + 0.5:.1f}" y="2" '
            f'width="{max(step - 1.5, 0.8):.1f}" height="30">'
            f"<title>{day['day']:%Y-%m-%d}: {escape(text)}</title></rect>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


# A strip cell's class per status (.strip i.x in app.css): a letter, not a word.
CELL = {"healthy": "h", "degraded": "d", "unhealthy": "x", "maintenance": "m", "unknown": "u"}


def status_strip(name: str, slots: list[int], start: datetime) -> SafeString:
    """An hour-by-hour strip of coloured cells, told in words too: the runs of one status
    ("healthy 07:00-19:00, unhealthy 19:00-21:00, ...") as its label and title. Built here
    rather than in the template: an overview draws 24 cells for each of hundreds of rows on
    every refresh."""
    words = [Status(s).label for s in slots]
    runs: list[str] = []
    first = 0
    for i in range(1, len(words) + 1):
        if i == len(words) or words[i] != words[first]:
            a = start + timedelta(hours=first)
            b = start + timedelta(hours=i)
            runs.append(f"{words[first]} {a:%H:%M}-{b:%H:%M}")
            first = i
    told = escape(f"{name}, last 24 h (UTC): " + ", ".join(runs))
    # Short cells (hundreds of rows, every refresh); the title is also the accessible name.
    cells = "".join(f'<i class="{CELL[w]}"></i>' for w in words)
    return mark_safe(  # noqa: S308 - the words are status labels; the name is escaped
        f'<span class="strip" role="img" title="{told}">{cells}</span>'
    )

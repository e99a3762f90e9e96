"""Template filters of the pages."""

from datetime import UTC, datetime, timedelta

from django import template
from django.utils.html import format_html

from portal import humanize

register = template.Library()


@register.filter
def humanize_duration(value: timedelta | None) -> str:
    return humanize.duration(value)


@register.filter
def percent(value: float | None) -> str:
    """0.99934 -> 99.93 %: always two decimals, enough to tell 99.9 from 99.99."""
    if value is None:
        return ""
    return f"{value * 100:.2f} %"


# How much of a moment a page shows: the pattern in UTC (the page as served), and the name
# static/js/app.js reads to show the same in the viewer's time zone.
PRECISIONS = {
    "seconds": "%Y-%m-%d %H:%M:%S",
    "minutes": "%Y-%m-%d %H:%M",
    "time": "%H:%M:%S",
    "clock": "%H:%M",
}


@register.filter
def moment(value: str | datetime | None, precision: str = "seconds") -> str:
    """An ISO time from a health document (or a datetime) as people read it: a ``<time>``
    element written in UTC, which static/js/app.js rewrites in the viewer's time zone (UTC
    kept in its title). Without JavaScript the page reads UTC, said so."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    pattern = PRECISIONS.get(precision, PRECISIONS["seconds"])
    iso = value.isoformat().replace("+00:00", "Z")
    return format_html(
        '<time datetime="{}" data-local="{}">{} UTC</time>',
        iso,
        precision if precision in PRECISIONS else "seconds",
        value.strftime(pattern),
    )

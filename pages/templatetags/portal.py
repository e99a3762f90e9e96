"""Template filters of the pages."""

from datetime import datetime, timedelta

from django import template

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


@register.filter
def moment(value: str | datetime | None) -> str:
    """An ISO time from a health document (or a datetime) as people read it, in UTC."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"

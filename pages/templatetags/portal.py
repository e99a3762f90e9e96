"""Template filters of the pages."""

from datetime import datetime, timedelta

from django import template

register = template.Library()


@register.filter
def humanize_duration(value: timedelta | None) -> str:
    """3 s, 4 min 10 s, 2 h 5 min, 3 d 4 h: the two largest units a person reads."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def percent(value: float | None) -> str:
    """0.99934 -> 99.934 %: enough digits to tell three nines from four."""
    if value is None:
        return ""
    return f"{value * 100:.3f}".rstrip("0").rstrip(".") + " %"


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

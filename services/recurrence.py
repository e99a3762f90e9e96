"""Recurring maintenance: an RFC 5545 RRULE in an IANA time zone, validated and bounded, and
the occurrences near an instant found without expanding the series.

How a series is read (docs/decisions.md, "Recurring maintenance windows"):

- The rule runs on the zone's local (wall-clock) time, from the first occurrence's local start
  (python-dateutil's rrule), so 02:00 Europe/Berlin stays 02:00 local across DST changes.
- A local start that does not exist (the spring-forward gap) is read with the UTC offset from
  before the gap, as RFC 5545 (3.3.5) says: 02:30 on the night Berlin moves to summer time is
  03:30 CEST. One that occurs twice (autumn) is the first of the two (still summer time).
- Every occurrence lasts as long as the first, in elapsed time.
- The series ends at its UNTIL (a UTC time), at its COUNT-th start, or -- a rule with
  neither -- 10 years after its first start; occurrences are at least a minute apart, never
  overlap, and number at most 10,000.

dateutil walks a rule from its DTSTART, so ``before(now)`` costs the series' age. Here the
rule is restarted at the start of its period (year, month, week, day... counted in INTERVALs
from DTSTART) shortly before the instant asked about: the same occurrences, a period's worth
of work. dateutil also walks on through periods that hold no occurrence until year 9999 (a
rule for 30 February takes 10-25 s to say it has none), so the walk runs in a calendar moved
towards year 9999 by a span of years whose days fall on the same weekdays: it stops there.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import structlog
from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, HOURLY, MINUTELY, MONTHLY, SECONDLY, WEEKLY, YEARLY, rrulestr

log = structlog.get_logger(__name__)
HORIZON = relativedelta(years=10)  # a series ends at most this long after its first start
# Every day for 10 years is 3,653, every hour for a year 8,760. Planning walks the whole
# series once: 10,000 of them take about 0.2 s.
MOST_OCCURRENCES = 10_000
MIN_GAP = timedelta(minutes=1)  # no more than one occurrence a minute
LONGEST_RULE = 500
# A local time maps to an instant within a day of itself read as UTC, whatever the zone did
# (Samoa skipped a whole day in 2011): scans reach this far past their bounds.
MARGIN = timedelta(days=2)

PARTS = (
    "FREQ",
    "UNTIL",
    "COUNT",
    "INTERVAL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
)
FREQUENCIES = {
    "YEARLY": YEARLY,
    "MONTHLY": MONTHLY,
    "WEEKLY": WEEKLY,
    "DAILY": DAILY,
    "HOURLY": HOURLY,
    "MINUTELY": MINUTELY,
    "SECONDLY": SECONDLY,
}
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Integer lists dateutil takes without complaint even where no date can match (BYMONTH=13):
# their RFC 5545 ranges, so a typo is named rather than found to have no occurrence.
RANGES = {"BYMONTH": (1, 12), "BYMONTHDAY": (1, 31), "BYYEARDAY": (1, 366), "BYWEEKNO": (1, 53)}
POSITIVE = re.compile(r"[1-9][0-9]{0,8}")
UNTIL_FORM = re.compile(r"[0-9]{8}T[0-9]{6}Z")


class RecurrenceError(ValueError):
    """A rule, zone or start that cannot make a series: which field, and why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Series:
    """A stored recurring window's series: what the cheap questions below need."""

    rule: str  # the RRULE's parts, normalised (upper case, no "RRULE:")
    tz: str
    first: datetime  # the first occurrence's start, UTC
    duration: timedelta
    last: datetime  # the last occurrence's start, UTC


@dataclass(frozen=True)
class _Rule:
    """A parsed rule without UNTIL and COUNT, from the first start's local time."""

    rule: Any  # dateutil's rrule (naive, local time)
    defaults: dict  # what dateutil takes from DTSTART, given explicitly for a moved start
    freq: int
    interval: int
    wkst: int
    first_wall: datetime


# --- Zones and rule text ------------------------------------------------------------------


# Files of the host's zone database that name no IANA zone: Debian's ``localtime`` is a link
# to /etc/localtime, the host's own zone, which the web and the workers' hosts need not share.
_NOT_IANA = frozenset({"localtime"})


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_IANA


def zone(name: str) -> tzinfo:
    """The IANA time zone of that name (UTC needs no database)."""
    if name == "UTC":
        return UTC
    if name not in _zone_names():
        raise RecurrenceError("tz", f"no IANA time zone named {name[:64]!r} (e.g. Europe/Berlin)")
    return ZoneInfo(name)


def stored_zone(name: str) -> tzinfo:
    """A planned window's zone. Its name was judged when it was planned, but the zone
    database is the host's and changes with it (a tzdata release drops a name, another host
    lacks a link): read as the name still loads, else as UTC, logged -- one window must not
    take the engine's tick, the API or the pages down."""
    try:
        return zone(name)
    except RecurrenceError:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            log.error("maintenance window zone unknown, read as UTC", tz=name[:64])
            return UTC


def split_rule(text: str) -> dict[str, str]:
    """The rule's parts by name, upper case; RecurrenceError naming what is wrong."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body:
        raise RecurrenceError(
            "rrule", "is empty: give an RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SU"
        )
    if len(body) > LONGEST_RULE or any(c in body for c in "\r\n\t "):
        raise RecurrenceError(
            "rrule", f"is one RRULE value without spaces, at most {LONGEST_RULE} characters"
        )
    parts: dict[str, str] = {}
    for item in body.upper().split(";"):
        name, sep, value = item.partition("=")
        if not sep or not value:
            raise RecurrenceError("rrule", f"{item[:40]!r} is not NAME=VALUE")
        if name not in PARTS:
            raise RecurrenceError(
                "rrule", f"{name[:40]!r} is not an RRULE part (RFC 5545: {', '.join(PARTS)})"
            )
        if name in parts:
            raise RecurrenceError("rrule", f"{name} is given twice")
        parts[name] = value
    _check_parts(parts)
    return parts


def _check_parts(parts: dict[str, str]) -> None:
    if parts.get("FREQ") not in FREQUENCIES:
        raise RecurrenceError("rrule", f"FREQ is required, one of {', '.join(FREQUENCIES)}")
    if "UNTIL" in parts and "COUNT" in parts:
        raise RecurrenceError("rrule", "UNTIL and COUNT exclude each other (RFC 5545)")
    for name in ("INTERVAL", "COUNT"):
        if name in parts and not POSITIVE.fullmatch(parts[name]):
            raise RecurrenceError("rrule", f"{name} is a positive whole number")
    if int(parts.get("COUNT", "1")) > MOST_OCCURRENCES:
        raise RecurrenceError("rrule", f"COUNT is at most {MOST_OCCURRENCES:,}")
    if "UNTIL" in parts and not UNTIL_FORM.fullmatch(parts["UNTIL"]):
        raise RecurrenceError(
            "rrule", "UNTIL is a UTC time such as 20271231T235959Z (RFC 5545, with a time zone)"
        )
    if parts.get("WKST", "MO") not in WEEKDAYS:
        raise RecurrenceError("rrule", f"WKST is one of {', '.join(WEEKDAYS)}")
    for name, (low, high) in RANGES.items():
        for value in parts.get(name, "").split(",") if name in parts else ():
            number = value.lstrip("+-")
            if not number.isdigit() or not low <= int(number) <= high:
                raise RecurrenceError(
                    "rrule", f"{name} values are {low} to {high} or -{high} to -{low}"
                )
            if value.startswith("-") and name == "BYMONTH":
                raise RecurrenceError("rrule", "BYMONTH values are 1 to 12")


def _until(parts: dict[str, str]) -> datetime | None:
    if "UNTIL" not in parts:
        return None
    try:
        return datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise RecurrenceError("rrule", f"UNTIL {parts['UNTIL']} is not a date and time") from None


@lru_cache(maxsize=512)
def _parse(body: str, first_wall: datetime) -> _Rule:
    """dateutil's rule for the parts but UNTIL and COUNT (applied here, on instants)."""
    parts = split_rule(body)
    given = frozenset(parts)
    kept = ";".join(f"{k}={v}" for k, v in parts.items() if k not in ("UNTIL", "COUNT"))
    try:
        rule = rrulestr(kept, dtstart=first_wall)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        reason = str(exc)[:120] or type(exc).__name__
        raise RecurrenceError(
            "rrule", f"is not an RFC 5545 RRULE dateutil reads: {reason}"
        ) from None
    freq = FREQUENCIES[parts["FREQ"]]
    return _Rule(
        rule=rule,
        defaults=_defaults(freq, given, first_wall),
        freq=freq,
        interval=int(parts.get("INTERVAL", "1")),
        wkst=WEEKDAYS.index(parts.get("WKST", "MO")),
        first_wall=first_wall,
    )


def _defaults(freq: int, given: frozenset[str], first: datetime) -> dict:
    """What dateutil takes from DTSTART when the rule does not say (RFC 5545 likewise): given
    explicitly, a rule restarted at a period's start keeps the first start's day and time."""
    out: dict = {}
    if freq < HOURLY and "BYHOUR" not in given:
        out["byhour"] = first.hour
    if freq < MINUTELY and "BYMINUTE" not in given:
        out["byminute"] = first.minute
    if freq < SECONDLY and "BYSECOND" not in given:
        out["bysecond"] = first.second
    if not given & {"BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY"}:
        if freq == YEARLY:
            if "BYMONTH" not in given:
                out["bymonth"] = first.month
            out["bymonthday"] = first.day
        elif freq == MONTHLY:
            out["bymonthday"] = first.day
        elif freq == WEEKLY:
            out["byweekday"] = first.weekday()
    return out


def normalise(text: str) -> str:
    return ";".join(f"{k}={v}" for k, v in split_rule(text).items())


# --- Walking a rule cheaply -----------------------------------------------------------------


def _wall(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: tzinfo) -> datetime:
    """A local time's instant: fold 0, so a time in a gap takes the offset from before it and
    a repeated one is its first (RFC 5545, 3.3.5)."""
    return wall.replace(tzinfo=tz).astimezone(UTC)


def _signature(year: int) -> tuple[int, bool]:
    return date(year, 1, 1).weekday(), calendar.isleap(year)


@lru_cache(maxsize=256)
def _calendar_shift(first: int, last: int) -> int:
    """Years to add so that the years first..last (and one either side) fall on the same
    weekdays with the same leap days, ending as close before 9999 as that allows; 0 if none.
    A multiple of 400 always does; in practice one within 28 years of 9999 does."""
    years = range(first - 1, last + 2)
    wanted = [_signature(y) for y in years]
    top = 9998 - (last - first) - 1
    for target in range(top, max(top - 400, first), -1):
        shift = target - first
        if all(_signature(y + shift) == w for y, w in zip(years, wanted, strict=True)):
            return shift
    return 0


def _walls(parsed: _Rule, start: datetime, until: datetime) -> Iterator[datetime]:
    """The rule's local starts from ``start`` (the first start, or a period's start) to
    ``until`` (local, naive), in order. The walk is bounded by year 9999 (module docstring)."""
    if until < start:
        return
    shift = _calendar_shift(start.year, until.year)
    moved = start.replace(year=start.year + shift)
    rule = parsed.rule.replace(dtstart=moved, **parsed.defaults)
    for found in rule:
        wall = found.replace(year=found.year - shift)
        if wall > until:
            return
        yield wall


def _period_start(parsed: _Rule, wall: datetime) -> datetime:
    """The start of the last of the rule's periods (FREQ x INTERVAL, counted from the first
    start's) that begins by ``wall``: restarting there gives the same occurrences from there
    on. The first start itself when that is its first period."""
    first, n = parsed.first_wall, parsed.interval
    if parsed.freq == YEARLY:
        k = (wall.year - first.year) // n
        moved = datetime(first.year + k * n, 1, 1)
    elif parsed.freq == MONTHLY:
        months = first.year * 12 + first.month - 1
        k = (wall.year * 12 + wall.month - 1 - months) // n
        month = months + k * n
        moved = datetime(month // 12, month % 12 + 1, 1)
    elif parsed.freq == WEEKLY:
        week = datetime.combine(
            first.date() - timedelta(days=(first.weekday() - parsed.wkst) % 7), datetime.min.time()
        )
        k = (wall - week).days // (7 * n)
        moved = week + timedelta(weeks=k * n)
    elif parsed.freq == DAILY:
        day = datetime.combine(first.date(), datetime.min.time())
        k = (wall - day).days // n
        moved = day + timedelta(days=k * n)
    else:
        unit = {HOURLY: 3600, MINUTELY: 60, SECONDLY: 1}[parsed.freq]
        base = {
            HOURLY: first.replace(minute=0, second=0),
            MINUTELY: first.replace(second=0),
        }.get(parsed.freq, first)
        k = int((wall - base).total_seconds() // (unit * n))
        moved = base + timedelta(seconds=k * n * unit)
    return moved if k > 0 else first


def _rule_of(series: Series) -> tuple[_Rule, tzinfo]:
    tz = stored_zone(series.tz)
    return _parse(series.rule, _wall(series.first, tz).replace(microsecond=0)), tz


def starts_between(series: Series, low: datetime, high: datetime) -> list[datetime]:
    """The starts (UTC) of the occurrences with low <= start <= high, in order: the rule walked
    from the period before ``low``, not from its first start."""
    low, high = max(low, series.first), min(high, series.last)
    if high < low:
        return []
    parsed, tz = _rule_of(series)
    start = _period_start(parsed, _wall(low, tz) - MARGIN)
    found = set()
    for wall in _walls(parsed, start, _wall(high, tz) + MARGIN):
        instant = _instant(wall, tz)
        if low <= instant <= high:
            found.add(instant)
    return sorted(found)


def covering(series: Series, at: datetime, cancelled=frozenset()) -> datetime | None:
    """The start of the occurrence open at ``at`` (start <= at < start + duration), unless
    cancelled; None if none is. Occurrences never overlap, so there is at most one."""
    starts = starts_between(series, at - series.duration, at)
    for start in reversed(starts):
        if start + series.duration > at:
            return None if start in cancelled else start
    return None


def upcoming(series: Series, at: datetime, count: int) -> list[datetime]:
    """The starts of the next ``count`` occurrences not ended at ``at`` (the open one first),
    cancelled ones included; fewer when the series ends."""
    found: list[datetime] = []
    low, span = at - series.duration, timedelta(days=8)
    while len(found) < count and low <= series.last:
        high = low + span
        found += [s for s in starts_between(series, low, high) if s + series.duration > at]
        low, span = high + timedelta(seconds=1), span * 4
    return found[:count]


def is_start(series: Series, instant: datetime) -> bool:
    return starts_between(series, instant, instant) == [instant]


# --- Planning a series ------------------------------------------------------------------------


def plan(text: str, tz_name: str, starts_at: datetime, ends_at: datetime, now: datetime) -> Series:
    """Validate a recurring window (its first occurrence starts_at..ends_at) and its series;
    RecurrenceError naming the field otherwise. Walks the whole series once (at most
    10,000 occurrences), so the answers later need not."""
    tz = zone(tz_name)
    parts = split_rule(text)
    body = ";".join(f"{k}={v}" for k, v in parts.items())
    starts_at, ends_at = starts_at.replace(microsecond=0), ends_at.replace(microsecond=0)
    if starts_at + HORIZON + (ends_at - starts_at) <= now:
        raise RecurrenceError(
            "starts_at", "is more than 10 years ago: a series that began then has ended"
        )
    first_wall = _wall(starts_at, tz)
    if _instant(first_wall, tz) != starts_at:
        raise RecurrenceError(
            "starts_at",
            f"is the second {first_wall:%H:%M} of the night {tz_name} turns its clocks back; a "
            "rule's local times are the first of the two (RFC 5545): start an hour earlier",
        )
    parsed = _parse(body, first_wall)
    duration = ends_at - starts_at
    _first_is_an_occurrence(parsed, first_wall, tz_name)
    cap = starts_at.astimezone(UTC) + HORIZON
    until = _until(parts)
    if until is not None and until < starts_at:
        raise RecurrenceError("rrule", "UNTIL is before starts_at: the series has no occurrence")
    if until is not None and until > cap:
        raise RecurrenceError(
            "rrule", f"UNTIL is more than 10 years after starts_at (at most {cap:%Y%m%dT%H%M%SZ})"
        )
    end = until or cap
    if "COUNT" in parts:
        end = _counted_end(parsed, tz, first_wall, int(parts["COUNT"]), cap)
    starts = _series_starts(parsed, tz, first_wall, end, duration)
    _check_gaps(starts, duration, tz)
    series = Series(
        rule=body, tz=tz_name, first=starts_at.astimezone(UTC), duration=duration, last=starts[-1]
    )
    if series.last + duration <= now:
        raise RecurrenceError(
            "rrule",
            f"the series' last occurrence ended at {series.last + duration:%Y-%m-%d %H:%M} UTC",
        )
    return series


def _first_is_an_occurrence(parsed: _Rule, first_wall: datetime, tz_name: str) -> None:
    if next(_walls(parsed, first_wall, first_wall), None) == first_wall:
        return
    later = next(_walls(parsed, first_wall, first_wall + HORIZON), None)
    said = (
        f"its first from then is {later:%Y-%m-%d %H:%M} {tz_name}"
        if later
        else ("it has none within 10 years")
    )
    raise RecurrenceError(
        "starts_at",
        f"{first_wall:%Y-%m-%d %H:%M} {tz_name} is not an occurrence of the rule ({said}): "
        "a recurring window starts at its first occurrence",
    )


def _counted_end(parsed: _Rule, tz: tzinfo, first_wall: datetime, count: int, cap: datetime):
    """The instant of the COUNT-th start, which must come within 10 years."""
    for n, wall in enumerate(_walls(parsed, first_wall, _wall(cap, tz) + MARGIN), start=1):
        if n == count:
            last = _instant(wall, tz)
            if last <= cap:
                return last
            break
    raise RecurrenceError("rrule", f"COUNT={count} runs past 10 years after starts_at")


def _series_starts(
    parsed: _Rule, tz: tzinfo, first_wall: datetime, end: datetime, duration: timedelta
) -> list[datetime]:
    """Every start (UTC, in order, each once) up to ``end``; RecurrenceError past 10,000.
    Stops at the first gap too short, which _check_gaps then names."""
    first = _instant(first_wall, tz)
    found: list[datetime] = []
    shortest, previous = max(MIN_GAP, duration), first
    for wall in _walls(parsed, first_wall, _wall(end, tz) + MARGIN):
        instant = wall.replace(tzinfo=tz).astimezone(UTC)  # _instant, inline: the hot loop
        if first <= instant <= end:
            found.append(instant)
            if len(found) > MOST_OCCURRENCES:
                raise RecurrenceError(
                    "rrule",
                    f"the series holds more than {MOST_OCCURRENCES:,} occurrences (every day "
                    "for 10 years is 3,653, every hour for a year 8,760): end it sooner with "
                    "UNTIL or COUNT",
                )
            if previous < instant < previous + shortest:
                break
            previous = instant
    return sorted(set(found))


def _check_gaps(starts: list[datetime], duration: timedelta, tz: tzinfo) -> None:
    for before, after in pairwise(starts):
        gap = after - before
        if gap < MIN_GAP:
            raise RecurrenceError(
                "rrule",
                f"occurs more than once a minute: {_local(before, tz)} and {_local(after, tz)} "
                f"are {gap.total_seconds():g} s apart",
            )
        if gap < duration:
            raise RecurrenceError(
                "ends_at",
                f"an occurrence lasts {duration}, longer than the {gap} from "
                f"{_local(before, tz)} to {_local(after, tz)}: occurrences may not overlap",
            )


def _local(instant: datetime, tz: tzinfo) -> str:
    return f"{instant.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"

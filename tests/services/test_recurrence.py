"""Recurring maintenance windows, the rule itself (services.recurrence): the occurrence open at
an instant, found cheaply, agrees with the whole series expanded by dateutil; local times are
kept across DST changes in a named zone (a time in the spring gap is read with the offset from
before it, a repeated one is the first, every occurrence lasts the first one's elapsed time);
a rule that cannot make a bounded series is refused naming its field, quickly."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services import recurrence
from services.recurrence import RecurrenceError

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def zone(name: str):
    return UTC if name == "UTC" else ZoneInfo(name)


def plan(rule, tz, starts_at, hours=1.0, now=None):
    ends_at = starts_at + timedelta(hours=hours)
    return recurrence.plan(rule, tz, starts_at, ends_at, now or starts_at)


def brute_force_starts(rule: str, tz: str, starts_at: datetime) -> list[datetime]:
    """Every start of the series, by expanding dateutil's rule from its first start to its end:
    UNTIL, the COUNT-th start, or 10 years after the first (the documented semantics)."""
    parts = dict(p.split("=", 1) for p in rule.split(";"))
    kept = ";".join(f"{k}={v}" for k, v in parts.items() if k not in ("UNTIL", "COUNT"))
    local = starts_at.astimezone(zone(tz))
    walls = rrulestr(kept, dtstart=local.replace(tzinfo=None))
    end = starts_at + recurrence.HORIZON
    if "UNTIL" in parts:
        end = datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    found = []
    for n, wall in enumerate(walls, start=1):
        instant = wall.replace(tzinfo=zone(tz)).astimezone(UTC)
        if "COUNT" in parts and n == int(parts["COUNT"]):
            end = instant
        if instant > end + timedelta(days=3):
            break
        found.append(instant)
    return sorted({s for s in found if starts_at <= s <= end})


@st.composite
def series_and_instants(draw):
    tz = draw(st.sampled_from(ZONES))
    freq = draw(st.sampled_from(["DAILY", "WEEKLY"]))
    parts = {"FREQ": freq, "INTERVAL": str(draw(st.integers(1, 3)))}
    if freq == "WEEKLY" and draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True))
        parts["BYDAY"] = ",".join(days)
    if draw(st.booleans()):  # a few times a day, some of them in the DST gap or overlap
        hours = draw(st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True))
        parts["BYHOUR"] = ",".join(map(str, hours))
    ending = draw(st.sampled_from(["none", "until", "count"]))
    local = draw(st.datetimes(datetime(2019, 1, 1), datetime(2027, 12, 31))).replace(microsecond=0)
    first_wall = next(iter(rrulestr(";".join(f"{k}={v}" for k, v in parts.items()), dtstart=local)))
    starts_at = first_wall.replace(tzinfo=zone(tz)).astimezone(UTC)
    if ending == "until":
        until = starts_at + timedelta(days=draw(st.integers(1, 3 * 365)))
        parts["UNTIL"] = f"{until:%Y%m%dT%H%M%SZ}"
    elif ending == "count":
        parts["COUNT"] = str(draw(st.integers(1, 400)))
    rule = ";".join(f"{k}={v}" for k, v in parts.items())
    minutes = draw(st.integers(1, 6 * 60))
    return rule, tz, starts_at, timedelta(minutes=minutes), draw(st.randoms())


@settings(max_examples=150, deadline=None)
@given(series_and_instants())
def test_the_occurrence_open_at_an_instant_agrees_with_the_whole_series_expanded(drawn):
    rule, tz, starts_at, duration, random = drawn
    try:
        series = recurrence.plan(rule, tz, starts_at, starts_at + duration, starts_at)
    except RecurrenceError as exc:
        # Occurrences closer than the duration, more than 10,000, or COUNT past 10 years.
        assume(exc.field != "ends_at" and "10,000" not in exc.reason)
        assume("runs past 10 years" not in exc.reason)
        raise
    starts = brute_force_starts(rule, tz, starts_at)
    assert series.last == starts[-1]
    instants = [starts_at - timedelta(days=1), series.last + duration + timedelta(days=1)]
    for start in random.sample(starts, min(len(starts), 8)):
        instants += [start - timedelta(seconds=1), start, start + duration - timedelta(seconds=1)]
        instants += [start + duration, start + duration * random.random()]
    span = (series.last + duration - starts_at).total_seconds()
    instants += [starts_at + timedelta(seconds=random.uniform(0, span)) for _ in range(20)]
    cancelled = frozenset(random.sample(starts, min(len(starts), 2)))
    for at in instants:
        open_at = [s for s in starts if s <= at < s + duration]
        assert recurrence.covering(series, at) == (open_at[-1] if open_at else None), at
        expected = open_at[-1] if open_at and open_at[-1] not in cancelled else None
        assert recurrence.covering(series, at, cancelled) == expected, at
    low = starts_at + timedelta(seconds=random.uniform(0, span))
    high = low + timedelta(days=random.randint(0, 60))
    assert recurrence.starts_between(series, low, high) == [s for s in starts if low <= s <= high]
    ahead = [s for s in starts if s + duration > low][:5]
    assert recurrence.upcoming(series, low, 5) == ahead


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"(FREQ=[A-Z]+;)?([A-Z]+=[-+0-9A-Z,]*;?){0,4}"))
def test_any_rule_text_makes_a_series_or_a_reason_never_another_error(text):
    starts_at = datetime(2027, 1, 3, 2, 0, tzinfo=UTC)
    try:
        plan(text, "Europe/Berlin", starts_at)
    except RecurrenceError as exc:
        assert exc.field in {"rrule", "starts_at", "ends_at"} and exc.reason


# --- DST in a named zone -------------------------------------------------------------------


def test_sunday_0200_berlin_stays_0200_local_across_both_dst_changes():
    first = datetime(2027, 3, 14, 2, 0, tzinfo=BERLIN)  # a Sunday, winter time
    series = plan("FREQ=WEEKLY;BYDAY=SU", "Europe/Berlin", first)
    starts = recurrence.upcoming(series, first, 4)
    assert [s.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for s in starts] == [
        "03-14 02:00 CET",
        "03-21 02:00 CET",
        # 28 March 2027: 02:00 does not exist (02:00 CET -> 03:00 CEST); read with the offset
        # from before the gap (RFC 5545): the occurrence starts at 03:00 CEST.
        "03-28 03:00 CEST",
        "04-04 02:00 CEST",
    ]
    assert [f"{s:%H:%M}" for s in starts] == ["01:00", "01:00", "01:00", "00:00"]  # UTC
    # It lasts its hour of elapsed time: 03:00-04:00 CEST, 01:00-02:00 UTC.
    spring = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert recurrence.covering(series, spring + timedelta(minutes=59)) == spring
    assert recurrence.covering(series, spring + timedelta(hours=1)) is None
    assert recurrence.covering(series, spring - timedelta(seconds=1)) is None

    autumn = recurrence.upcoming(series, datetime(2027, 10, 20, tzinfo=UTC), 3)
    assert [s.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for s in autumn] == [
        # 31 October 2027: 02:00-03:00 happens twice; the occurrence is the first 02:00
        # (CEST), an hour of elapsed time, to the second 02:00 (CET).
        "10-24 02:00 CEST",
        "10-31 02:00 CEST",
        "11-07 02:00 CET",
    ]
    fall_back = datetime(2027, 10, 31, 0, 0, tzinfo=UTC)
    assert recurrence.covering(series, fall_back + timedelta(minutes=30)) == fall_back
    assert recurrence.covering(series, fall_back + timedelta(minutes=90)) is None  # 02:30 CET


def test_new_york_keeps_its_local_time_and_reads_the_gap_and_the_repeat_as_rfc_5545_says():
    first = datetime(2027, 3, 7, 2, 30, tzinfo=NEW_YORK)
    series = plan("FREQ=WEEKLY", "America/New_York", first, hours=0.5)
    spring = recurrence.upcoming(series, first, 3)
    # 14 March 2027: 02:30 does not exist; read with EST's offset it is 03:30 EDT.
    assert [s.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z") for s in spring] == [
        "03-07 02:30 EST",
        "03-14 03:30 EDT",
        "03-21 02:30 EDT",
    ]
    assert [f"{s:%H:%M}" for s in spring] == ["07:30", "07:30", "06:30"]

    repeated = plan(
        "FREQ=DAILY", "America/New_York", datetime(2027, 10, 30, 1, 30, tzinfo=NEW_YORK)
    )
    autumn = recurrence.upcoming(repeated, datetime(2027, 10, 30, tzinfo=UTC), 3)
    # 7 November 2027: 01:30 happens twice; the occurrence is the first (EDT).
    assert [s.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z") for s in autumn] == [
        "10-30 01:30 EDT",
        "10-31 01:30 EDT",
        "11-01 01:30 EDT",
    ]
    first_of_two = datetime(2027, 11, 7, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert recurrence.covering(repeated, first_of_two + timedelta(minutes=59)) == first_of_two
    assert recurrence.covering(repeated, first_of_two + timedelta(minutes=61)) is None  # 01:31 EST


def test_a_start_given_as_the_second_of_a_repeated_hour_is_refused_naming_starts_at():
    second = datetime(2027, 10, 31, 2, 30, tzinfo=BERLIN, fold=1)  # 02:30 CET, after the change
    with pytest.raises(RecurrenceError) as refused:
        plan("FREQ=WEEKLY", "Europe/Berlin", second)
    assert refused.value.field == "starts_at" and "first of the two" in refused.value.reason


# --- Validation: each refusal names its field -----------------------------------------------


START = datetime(2027, 1, 3, 2, 0, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize(
    ("rule", "tz", "hours", "field", "reason"),
    [
        ("FREQ=FORTNIGHTLY", "UTC", 1, "rrule", "FREQ is required"),
        ("BYDAY=SU", "UTC", 1, "rrule", "FREQ is required"),
        ("FREQ=WEEKLY;BYDAY=XX", "UTC", 1, "rrule", "invalid 'BYDAY'"),
        ("FREQ=WEEKLY;BYEASTER=1", "UTC", 1, "rrule", "not an RRULE part"),
        ("FREQ=WEEKLY;COUNT=2;UNTIL=20270301T000000Z", "UTC", 1, "rrule", "exclude each other"),
        ("FREQ=WEEKLY;UNTIL=20270301", "UTC", 1, "rrule", "UNTIL is a UTC time"),
        ("FREQ=WEEKLY;INTERVAL=0", "UTC", 1, "rrule", "INTERVAL is a positive whole number"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "UTC", 1, "rrule", "BYMONTHDAY values are 1 to 31"),
        ("FREQ=SECONDLY;INTERVAL=30", "UTC", 0.001, "rrule", "more than once a minute"),
        ("FREQ=MINUTELY;BYSECOND=0,30", "UTC", 0.001, "rrule", "more than once a minute"),
        ("FREQ=HOURLY", "UTC", 2, "ends_at", "may not overlap"),
        ("FREQ=DAILY;BYHOUR=2,3", "UTC", 1.5, "ends_at", "may not overlap"),
        ("FREQ=WEEKLY;UNTIL=20380101T000000Z", "UTC", 1, "rrule", "more than 10 years"),
        ("FREQ=YEARLY;COUNT=12", "UTC", 1, "rrule", "COUNT=12 runs past 10 years"),
        ("FREQ=WEEKLY;COUNT=10001", "UTC", 1, "rrule", "COUNT is at most 10,000"),
        ("FREQ=HOURLY", "UTC", 0.5, "rrule", "more than 10,000 occurrences"),
        ("FREQ=WEEKLY;UNTIL=20261231T000000Z", "UTC", 1, "rrule", "UNTIL is before starts_at"),
        ("FREQ=WEEKLY;BYDAY=MO", "UTC", 1, "starts_at", "first from then is 2027-01-04 02:00"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "UTC", 1, "starts_at", "none within 10 years"),
        ("FREQ=WEEKLY", "Mars/Olympus_Mons", 1, "tz", "no IANA time zone"),
        ("FREQ=WEEKLY", "europe/berlin", 1, "tz", "no IANA time zone"),
        # Found in the breaking trial: Debian's zoneinfo/localtime (a link to /etc/localtime)
        # was taken as a zone -- the host's own, which the web and the workers need not share.
        ("FREQ=WEEKLY", "localtime", 1, "tz", "no IANA time zone"),
    ],
)
def test_a_rule_that_cannot_make_a_bounded_series_is_refused_naming_its_field(
    rule, tz, hours, field, reason
):
    with pytest.raises(RecurrenceError) as refused:
        plan(rule, tz, START, hours)
    assert refused.value.field == field
    assert reason in refused.value.reason, refused.value.reason


def test_a_series_that_has_ended_is_refused():
    with pytest.raises(RecurrenceError) as refused:
        plan("FREQ=DAILY;COUNT=3", "UTC", START, now=START + timedelta(days=5))
    assert refused.value.field == "rrule" and "last occurrence ended" in refused.value.reason
    ancient = datetime(1, 1, 1, tzinfo=UTC)  # what a fuzzer sends: refused, not a 500
    with pytest.raises(RecurrenceError) as refused:
        plan("FREQ=YEARLY", "Europe/Berlin", ancient, now=START)
    assert refused.value.field == "starts_at" and "10 years ago" in refused.value.reason


def test_a_rule_without_until_or_count_ends_10_years_after_its_first_start():
    series = plan("FREQ=WEEKLY", "UTC", START)
    assert series.last == datetime(2036, 12, 28, 2, 0, tzinfo=UTC)  # the last Sunday by then
    assert series.last <= START + recurrence.HORIZON < series.last + timedelta(weeks=1)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30",  # no such day: dateutil alone walks to 9999
        "FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=DAILY;BYYEARDAY=366;BYMONTH=1",
        "FREQ=MINUTELY;INTERVAL=2",  # 2.6 million occurrences in 10 years
    ],
)
def test_a_rule_with_no_or_too_many_occurrences_is_refused_within_a_second(rule):
    began = time.perf_counter()
    with pytest.raises(RecurrenceError):
        plan(rule, "Europe/Berlin", START, hours=1 / 60)
    assert time.perf_counter() - began < 1.0  # measured: about 0.2 s; 10-25 s unbounded


def test_the_walk_to_an_instant_starts_at_most_one_period_before_it():
    """Cheap for the engine: the rule restarts at the period (FREQ x INTERVAL) before the
    instant asked about, whatever the series' age, and finds the same occurrences."""
    series = plan("FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,WE", "Europe/Berlin", START)
    parsed, _ = recurrence._rule_of(series)
    late = datetime(2035, 6, 1, 12, 0)
    restart = recurrence._period_start(parsed, late)
    assert late - timedelta(weeks=2) < restart <= late
    assert restart.weekday() == 0 and restart.time() == datetime.min.time()  # WKST=MO
    brute = brute_force_starts(series.rule, "Europe/Berlin", START)
    start = next(s for s in brute if s > late.replace(tzinfo=UTC))
    assert recurrence.covering(series, start + timedelta(minutes=30)) == start
    assert recurrence.covering(series, start - timedelta(minutes=30)) is None

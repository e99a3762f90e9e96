"""The status rules, without the database."""

import pytest

from healthchecks.status import (
    Status,
    is_stale,
    is_usable,
    next_check_status,
    overall_status,
    service_status,
)

H, D, U, K = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.UNKNOWN


def run(outcomes, retries, start=K):
    status, failures, seen = start, 0, []
    for outcome in outcomes:
        status, failures = next_check_status(status, failures, outcome, retries)
        seen.append(status)
    return seen


def test_retries_damp_failures_but_one_success_heals():
    assert run([H, U, U, U, H], retries=2) == [H, H, H, U, H]
    assert run([H, U, H, U, U], retries=1) == [H, H, H, H, U]


def test_with_no_retries_the_first_failure_counts():
    assert run([H, U], retries=0) == [H, U]


def test_degraded_takes_effect_at_once_and_resets_failures():
    assert run([H, U, D, U], retries=1) == [H, H, D, D]


def test_a_new_check_stays_unknown_while_failures_are_tolerated():
    assert run([U, U], retries=1) == [K, U]


@pytest.mark.parametrize(
    ("checks", "deps", "expected", "reason"),
    [
        ([("http", H, True)], [], H, ""),
        ([("http", U, True), ("tcp", H, True)], [], U, "critical check failing: http"),
        ([("http", H, True), ("cache", U, False)], [], D, "non-critical check failing: cache"),
        ([("http", D, True)], [], D, "degraded: http"),
        ([("http", K, True)], [], K, "no recent result: http"),
        ([("http", H, True), ("tcp", K, True)], [], D, "no recent result: tcp"),
        ([], [], K, "no checks"),
        ([("http", H, True)], [("db", U)], D, "hard dependency unhealthy: db"),
        ([("http", H, True)], [("db", D)], H, ""),
        (
            [("http", U, True)],
            [("db", U)],
            U,
            "critical check failing: http; hard dependency unhealthy: db",
        ),
    ],
)
def test_service_status_from_checks_then_hard_dependencies(checks, deps, expected, reason):
    assert service_status(checks, deps) == (expected, reason)


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ([(H, True), (H, False)], H),
        ([(H, True), (U, False)], D),
        ([(U, True), (H, False)], U),
        ([(D, True)], D),
        ([(H, True), (K, False)], H),
        ([(K, True)], K),
        ([], K),
    ],
)
def test_overall_status(services, expected):
    assert overall_status(services) == expected


def test_usable_means_healthy_or_degraded():
    assert [is_usable(s) for s in (H, D, U, K)] == [True, True, False, False]


def test_a_check_without_results_for_two_intervals_is_stale():
    assert not is_stale(None, 30, 5, 1000)
    assert not is_stale(1000, 30, 5, 1060)
    assert is_stale(1000, 30, 5, 1000 + 71)

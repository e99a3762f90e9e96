"""Retries (docs/decisions.md), as a property over every sequence of outcomes: with
`retries: N`, N failures in a row are tolerated -- the check keeps its status, with a warning
"failure k of N+1" -- and the next turns it unhealthy; a success heals at once; a slow
answer degrades at once (and, like a success, ends the run of failures). Through the
recording path workers use, on the database."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.engine import recording
from healthchecks.models import CheckState
from healthchecks.probes import ProbeOutcome
from healthchecks.status import ErrorCode, Status
from tests.factories import ServiceFactory, make_check

pytestmark = pytest.mark.django_db
H, D, U, K = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.UNKNOWN
CODES = {H: ErrorCode.NONE, D: ErrorCode.SLOW, U: ErrorCode.REFUSED}


def what_the_decision_says(outcomes: list[int], retries: int):
    """(status, failures in a row) after each outcome, read off the decision."""
    status, failures = K, 0
    for outcome in outcomes:
        if outcome == U:
            failures += 1
            status = U if failures > retries else status
        else:
            status, failures = outcome, 0
        yield status, failures


@given(
    retries=st.integers(0, 3),
    outcomes=st.lists(st.sampled_from([H, D, U]), min_size=1, max_size=12),
)
@hypothesis_settings(max_examples=60, deadline=None)
def test_retries_n_tolerates_n_failures_in_a_row_and_one_success_heals(retries, outcomes):
    t0 = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        check = make_check(ServiceFactory(), retries=retries, interval=30)
        expected = what_the_decision_says(outcomes, retries)
        for i, (outcome, (status, failures)) in enumerate(zip(outcomes, expected, strict=True)):
            due = t0 + timedelta(seconds=30 * i)
            seen = ProbeOutcome(
                outcome,
                response_ms=12.0,
                errors=["refused"] if outcome == U else [],
                error_code=CODES[outcome],
            )
            recording.record([recording.Result(check.pk, due, due, seen)])
            state = CheckState.objects.get(health_check=check)
            assert (state.status, state.consecutive_failures) == (status, failures), (i, outcomes)
            tolerated = outcome == U and failures <= retries
            warnings = state.last_outcome.get("warnings", [])
            assert any(f"failure {failures} of {retries + 1}" in w for w in warnings) == tolerated
        transaction.set_rollback(True)

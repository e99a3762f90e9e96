"""Recording probe outcomes: raw results, check states, status changes -- in bulk, in one
transaction per flush, and idempotent (a batch run twice records each result once).

A result answers one (check, due time). The raw row is inserted with ON CONFLICT DO
NOTHING, and the check's state only moves forward: an outcome for a due time at or before
the one the state already reflects is kept in history but changes nothing else.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from healthchecks.engine import service_health
from healthchecks.models import CheckResult, CheckState, HealthCheck, ResultDetail, StatusChange
from healthchecks.probes import ProbeOutcome
from healthchecks.status import NOT_OBSERVATIONS, ErrorCode, Status, next_check_status

MAX_INT32 = 2**31 - 1


@dataclass
class Result:
    check_id: int
    due_at: datetime
    started_at: datetime
    outcome: ProbeOutcome

    @property
    def lag_ms(self) -> int:
        """Probe start minus due time, as it was: a slot ten minutes late says 600,000 ms."""
        lag = (self.started_at - self.due_at).total_seconds() * 1000
        return max(-MAX_INT32, min(MAX_INT32, round(lag)))

    @property
    def observed(self) -> bool:
        """Whether the result observed the target (not a missed slot, not an outcome the
        checker's own overload made untrustworthy)."""
        return self.outcome.error_code not in NOT_OBSERVATIONS

    def outcome_json(self) -> dict:
        o = self.outcome
        return storable(
            {
                "errors": o.errors,
                "warnings": o.warnings,
                "details": o.details,
                "metrics": o.metrics,
            }
        )


def storable(value):
    """``value`` with every NUL written out as ``\\0``: PostgreSQL's text cannot hold one, and a
    target that put one in its health document (``"output": "bad\\u0000"``) made every
    flush holding its result fail -- the failure dropped, the check left healthy."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


STATE_FIELDS = [
    "status",
    "raw_status",
    "consecutive_failures",
    "status_since",
    "last_due_at",
    "last_result_at",
    "last_response_us",
    "last_error_code",
    "last_outcome",
]


def record(results: list[Result]) -> int:
    """Store a flush of results; returns how many check statuses changed."""
    if not results:
        return 0
    now = timezone.now()
    with transaction.atomic():
        ids = sorted({r.check_id for r in results})
        checks = {
            c["id"]: c
            for c in HealthCheck.objects.filter(pk__in=ids).values(
                "id", "retries", "service_id", "name"
            )
        }
        results = [r for r in results if r.check_id in checks]  # deleted while probed
        _insert_history(results)
        # Lock in id order: concurrent flushes touching the same checks cannot deadlock.
        states = {
            s.health_check_id: s
            for s in CheckState.objects.select_for_update()
            .filter(health_check_id__in=ids)
            .order_by("health_check_id")
        }
        changes, advanced = [], {}
        for result in sorted(results, key=lambda r: r.due_at):
            state, check = states.get(result.check_id), checks[result.check_id]
            if state is None or not _is_newer(state, result) or not result.observed:
                continue  # deleted while its probe ran, already reflected, or not observed
            change = _advance(state, check, result)
            advanced[state.pk] = state
            if change is not None:
                changes.append(change)
        _write_states(list(advanced.values()))
        if changes:
            StatusChange.objects.bulk_create(changes)
            service_health.recompute({c.service_id for c in changes}, now)
    return len(changes)


_INSERT_RESULTS_SQL = """
INSERT INTO healthchecks_checkresult (at, health_check_id, response_us, status, error_code,
                                      lag_ms)
SELECT * FROM unnest(%s::timestamptz[], %s::int[], %s::int[], %s::smallint[], %s::smallint[],
                     %s::int[])
ON CONFLICT DO NOTHING
"""
_UPDATE_STATES_SQL = """
UPDATE healthchecks_checkstate AS s
SET status = v.status, raw_status = v.raw_status, consecutive_failures = v.failures,
    status_since = v.since, last_due_at = v.due, last_result_at = v.result_at,
    last_response_us = v.response_us, last_error_code = v.error_code,
    last_outcome = v.outcome::jsonb
FROM unnest(%s::int[], %s::smallint[], %s::smallint[], %s::int[], %s::timestamptz[],
            %s::timestamptz[], %s::timestamptz[], %s::int[], %s::smallint[], %s::text[])
    AS v(id, status, raw_status, failures, since, due, result_at, response_us, error_code,
         outcome)
WHERE s.health_check_id = v.id
"""


def _write_states(states: list[CheckState]) -> None:
    """One UPDATE for a whole flush (PostgreSQL: from arrays; elsewhere bulk_update)."""
    if not states:
        return
    if connection.vendor != "postgresql":
        CheckState.objects.bulk_update(states, STATE_FIELDS, batch_size=500)
        return
    columns = list(
        zip(
            *[
                (
                    s.health_check_id,
                    s.status,
                    s.raw_status,
                    s.consecutive_failures,
                    s.status_since,
                    s.last_due_at,
                    s.last_result_at,
                    s.last_response_us,
                    s.last_error_code,
                    json.dumps(s.last_outcome),
                )
                for s in states
            ],
            strict=True,
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_STATES_SQL, [list(c) for c in columns])


def record_skipped(claims, at: datetime) -> None:
    """History rows for slots the dispatcher kept back: unknown, ``SKIPPED``, no state moved
    (a plain insert: an overloaded engine is not asked for more than that)."""
    outcome = ProbeOutcome(Status.UNKNOWN, error_code=ErrorCode.SKIPPED)
    _insert_history([Result(c.check_id, c.due_at, at, outcome) for c in claims], details=False)


def _insert_history(results: list[Result], *, details: bool = True) -> None:
    if connection.vendor == "postgresql":
        rows = [
            (
                r.due_at,
                r.check_id,
                round(r.outcome.response_ms * 1000),
                r.outcome.status,
                r.outcome.error_code,
                r.lag_ms,
            )
            for r in results
        ]
        if rows:
            with connection.cursor() as cursor:
                cursor.execute(_INSERT_RESULTS_SQL, [list(c) for c in zip(*rows, strict=True)])
    else:
        _insert_history_portable(results)
    if details:
        _insert_details(results)


def _insert_history_portable(results: list[Result]) -> None:
    CheckResult.objects.bulk_create(
        [
            CheckResult(
                health_check_id=r.check_id,
                at=r.due_at,
                status=r.outcome.status,
                error_code=r.outcome.error_code,
                lag_ms=r.lag_ms,
                response_us=round(r.outcome.response_ms * 1000),
            )
            for r in results
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )


def _insert_details(results: list[Result]) -> None:
    detailed = [
        r
        for r in results
        if r.outcome.status != Status.HEALTHY or r.outcome.warnings or r.outcome.errors
    ]
    ResultDetail.objects.bulk_create(
        [
            ResultDetail(health_check_id=r.check_id, at=r.due_at, outcome=r.outcome_json())
            for r in detailed
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )


def _is_newer(state: CheckState, result: Result) -> bool:
    """A result older than what the state reflects (a retried batch, or one overtaken by a
    newer result) stays in history but must not move the state back."""
    return state.last_due_at is None or result.due_at > state.last_due_at


def _advance(state: CheckState, check: Mapping[str, Any], result: Result) -> StatusChange | None:
    outcome = result.outcome
    status, failures = next_check_status(
        state.status, state.consecutive_failures, outcome.status, check["retries"]
    )
    previous = state.status
    details = result.outcome_json()
    if outcome.status == Status.UNHEALTHY and status != Status.UNHEALTHY:
        details["warnings"] = [
            *details["warnings"],
            f"failure {failures} of {check['retries'] + 1} before the check turns unhealthy",
        ]
    state.raw_status = outcome.status
    state.consecutive_failures = failures
    state.last_due_at = result.due_at
    state.last_result_at = result.started_at
    state.last_response_us = round(outcome.response_ms * 1000)
    state.last_error_code = outcome.error_code
    state.last_outcome = details
    if status == previous:
        return None
    state.status, state.status_since = status, result.started_at
    return StatusChange(
        service_id=check["service_id"],
        health_check_id=state.health_check_id,
        from_status=previous,
        to_status=status,
        at=result.started_at,
        cause=storable("; ".join(outcome.errors or outcome.warnings))
        or f"{check['name']} is {Status(status).label}",
    )

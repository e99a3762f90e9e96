"""Predictions are a stored set (docs/decisions.md): beat computes them and stores them whole,
and `GET /health/predictive` -- open to anyone -- reads the stored set and runs no maths per
request. So the answer is what the last refresh found, whatever the history says since, in a
fixed number of queries; the next refresh replaces it whole."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from healthchecks.models import CheckResult
from healthchecks.reads import predict
from tests.factories import make_check
from tests.healthchecks.test_predict import record

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def predictive(client) -> tuple[dict, int]:
    with CaptureQueriesContext(connection) as queries:
        answer = client.get("/health/predictive")
    assert answer.status_code == 200
    return answer.json(), len(queries)


def test_the_predictive_endpoint_reads_the_stored_set(client):
    check = make_check(name="http", latency_threshold_ms=400)
    for minute in range(20, 0, -1):  # rising 10 ms a minute towards 400 ms
        record(check, minute, 350 - 10 * minute)
    assert predict.refresh() == 1
    stored, spent = predictive(client)
    assert [p["kind"] for p in stored["predictions"]] == ["latency_trend"]

    CheckResult.objects.filter(health_check=check).delete()  # the maths would find nothing now
    again, spent_again = predictive(client)
    assert again == stored  # the stored set, as the refresh left it
    assert spent_again == spent <= 2

    assert predict.refresh() == 0  # the next refresh replaces it whole
    assert predictive(client)[0]["predictions"] == []

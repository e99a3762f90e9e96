"""The README ("Pages"): a service's page shows its status timeline and response times over
1 h to 90 d, and 90 daily uptime bars -- through Django's full stack, as a viewer."""

import pytest
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
RANGES = ["1h", "24h", "7d", "30d", "90d"]


def test_the_service_page_draws_each_range_from_1_h_to_90_d_and_90_daily_bars(client, bob):
    check = make_check(ServiceFactory(name="db"), name="tcp", is_critical=True)
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(Status.HEALTHY))])
    client.force_login(bob)
    for span in RANGES:
        page = client.get(f"/services/db/?range={span}").content.decode()
        assert f'aria-current="true">{span}<' in page, span  # drawn over that range
        for other in RANGES:  # every range offered
            assert f">{other}</a>" in page, (span, other)
        assert '<svg class="chart timeline"' in page and '<svg class="chart latency"' in page
        bars = page[page.index('<svg class="chart bars"') :]
        bars = bars[: bars.index("</svg>")]
        assert bars.count("<rect") == 90, span

"""Every accepted channel scheme connects through the egress guard, to the place its scheme
declares and nowhere else (issue 20, item 2): one case per scheme, plain and secure, each sent
through the real delivery path; the attempt names where the notifier tried to connect, and
that is the declared place (a closed local port for the self-hosted schemes, the vendor's
fixed host for the hosted ones). A notifier that tried anywhere else would be refused by
the guard's ``only``, and the attempt would say so."""

import pytest

from automation import channels, schemes
from automation.models import NotificationChannel
from portal.egress import format_host_port
from tests.automation.test_channel_destinations import (  # noqa: F401
    SELF_HOSTED,
    down_alert,
    send_to,
    stored_as_before,
)
from tests.healthchecks.servers import closed_port

pytestmark = [pytest.mark.django_db(transaction=True)]

VENDORS = {
    "slack": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#general",
    "discord": "discord://1234567890/abcdefghijklmnop",
    "pagerduty": "pagerduty://intkey123@apikey456",
    "opsgenie": "opsgenie://apikey1234567",
    "tgram": "tgram://123456789:AAHabcdefghijklmnopqrstuvwxyz012345/987654321",
    "pover": "pover://u1234567890abcdefghijklmnopqrs@a1234567890abcdefghijklmnopqrs",
    "gchat": "gchat://workspace/key/token",
    "ntfy-cloud": "ntfy://alerts",
}
PORT = closed_port()
CASES = {
    **{
        scheme: SELF_HOSTED[kind].format(s=scheme, host="127.0.0.1", port=PORT)
        for spec in schemes.SCHEMES
        for scheme in spec.schemes
        for kind in [next((k for k in SELF_HOSTED if k in spec.schemes), None)]
        if kind is not None
    },
    **VENDORS,
}


def test_every_accepted_scheme_has_a_case():
    covered = {
        name
        for url in CASES.values()
        for name in schemes.accepted(channels.plugin_for(url)).schemes
    }
    assert covered == {name for spec in schemes.SCHEMES for name in spec.schemes}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_channel_connects_only_where_its_scheme_says(down_alert, case):  # noqa: F811
    url = CASES[case]
    plugin = channels.plugin_for(url)
    places, _ = schemes.accepted(plugin).reaches(plugin)
    try:
        attempt = send_to(down_alert, stored_as_before("ch", url))
        assert not attempt.ok  # nothing answers there in the tests
        tried = attempt.error.rpartition("(tried ")[2].rstrip(")")
        assert tried, attempt.error
        for place in tried.split(", "):
            assert place in {format_host_port(*p) for p in places}, (tried, places)
        if case in VENDORS:
            assert any(host in tried for host, _ in places)
        else:
            assert tried == format_host_port("127.0.0.1", PORT)
    finally:
        NotificationChannel.objects.all().delete()

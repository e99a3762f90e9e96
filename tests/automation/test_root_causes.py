"""Root causes (docs/decisions.md, "Alerts act on state, not on events"): a root that
recovers unfolds the dependents still down on their own, which are then announced; with
several roots, a dependent's alert goes with the first by name (each root has its own
alert anyway). Through the real engine, the automation and an apprise receiver."""

import pytest

from automation.models import Alert, Delivery
from tests.automation.conftest import channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_a_root_that_recovers_unfolds_the_dependents_still_down_and_announces_them(
    estate, receiver
):
    estate.add("db")
    estate.add("payments", depends_on=["db"])
    estate.up("db", "payments")
    process()
    channel("ops", receiver.url)
    estate.down("payments", "db")  # payments' own check fails too, and stays failing
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db"]
    assert Alert.objects.get(service__name="payments", resolved_at=None).root.service.name == "db"

    estate.up("db")
    process()
    payments = Alert.objects.get(service__name="payments", resolved_at=None)
    assert payments.root is None  # on its own again
    send_later()
    # Both are due at once and sent in parallel: which reaches the receiver first is not set.
    titles = receiver.titles()
    assert titles[0] == "[DOWN] db"
    assert sorted(titles[1:]) == ["[DOWN] payments", "[RECOVERED] db"]


def test_of_several_root_causes_the_first_by_name_carries_the_alert(estate, receiver):
    estate.add("zeta-db")
    estate.add("alpha-cache")
    estate.add("app", depends_on=["zeta-db", "alpha-cache"])
    estate.up("zeta-db", "alpha-cache", "app")
    process()
    channel("ops", receiver.url)
    estate.down("app", "zeta-db", "alpha-cache")
    process()
    send_later()
    app = Alert.objects.get(service__name="app", resolved_at=None)
    assert app.root.service.name == "alpha-cache"
    assert not Delivery.objects.filter(alert=app).exclude(detail__startswith="folded").exists()
    assert sorted(receiver.titles()) == ["[DOWN] alpha-cache", "[DOWN] zeta-db"]

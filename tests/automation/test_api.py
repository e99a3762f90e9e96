"""The alerts and notification-channel API: scopes, limited tokens, acknowledgement, and
channel URLs that are validated, kept secret and judged by the network policy."""

import pytest

from automation.models import Alert, NotificationChannel
from portal.models import AuditEntry
from tests.automation.conftest import channel, process, send_later
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def down_estate(estate, receiver):
    """db down with ledger behind it, announced on one channel."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.add("shop", team="retail")
    estate.up("db", "ledger", "shop")
    process()
    channel("ops", receiver.url)
    estate.down("db")
    process()
    send_later()
    return estate


@pytest.fixture
def automation(make_token):
    return ApiClient(make_token(["automation:read", "automation:write"]).secret)


def test_alerts_are_listed_with_root_causes_and_impacted_services(down_estate, automation):
    answer = automation.call("get", "/api/alerts?open=true")
    assert answer.status_code == 200, answer.json()
    listed = answer.json()
    assert (listed["count"], listed["limit"], listed["offset"]) == (2, 100, 0)
    by_service = {a["service"]: a for a in listed["items"]}
    assert set(by_service) == {"db", "ledger"}
    assert by_service["db"]["status"] == "down" and by_service["db"]["root_cause"] is None
    assert by_service["db"]["impacted"] == ["ledger"]
    assert by_service["ledger"]["root_cause"] == "db"
    assert automation.call("get", "/api/alerts?service=shop").json()["items"] == []

    detail = automation.call("get", f"/api/alerts/{by_service['db']['id']}").json()
    (delivery,) = detail["deliveries"]
    assert (delivery["channel"], delivery["event"], delivery["state"]) == ("ops", "down", "sent")
    assert delivery["attempts"][0]["ok"] is True


def test_acknowledging_records_who_once(down_estate, automation, make_token):
    alert = Alert.objects.get(service__name="db", resolved_at=None)
    answer = automation.call("post", f"/api/alerts/{alert.id}/acknowledge")
    assert answer.status_code == 200
    assert answer.json()["acknowledged_by"].startswith("token:")
    assert AuditEntry.objects.filter(action="alert.acknowledge", target=f"db#{alert.id}").exists()
    again = automation.call("post", f"/api/alerts/{alert.id}/acknowledge")
    assert again.status_code == 409
    assert "was acknowledged by token:" in again.json()["error"]["message"]
    reader = ApiClient(make_token(["automation:read"]).secret)
    assert reader.call("post", f"/api/alerts/{alert.id}/acknowledge").status_code == 403
    assert automation.call("post", "/api/alerts/999999/acknowledge").status_code == 404


def test_a_resolved_alert_is_not_acknowledged(down_estate, automation):
    alert = Alert.objects.get(service__name="db", resolved_at=None)
    down_estate.up("db", "ledger")
    process()
    answer = automation.call("post", f"/api/alerts/{alert.id}/acknowledge")
    assert answer.status_code == 409
    assert "was resolved at" in answer.json()["error"]["message"]
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_a_token_limited_to_services_sees_only_their_alerts(down_estate, make_token):
    limited = ApiClient(make_token(["automation:read"], services=["ledger"]).secret)
    page = limited.call("get", "/api/alerts").json()
    assert [a["service"] for a in page["items"]] == ["ledger"] and page["count"] == 1
    db_alert = Alert.objects.get(service__name="db", resolved_at=None)
    assert limited.call("get", f"/api/alerts/{db_alert.id}").status_code == 404


def test_a_channel_url_is_stored_encrypted_and_shown_masked(automation, receiver, db):
    url = f"json://user:s3cret-pass@127.0.0.1:{receiver.server.port}/hooks/T0KEN-abcdef"
    answer = automation.call("put", "/api/notification-channels/ops", {"url": url})
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    port = receiver.server.port
    assert body["url"] == f"json://user:****@127.0.0.1:{port}/hooks/T...f"
    assert body["events"] == ["down", "degraded", "recovered"] and body["teams"] == []
    stored = NotificationChannel.objects.get(name="ops")
    assert "s3cret-pass" not in stored.url and "127.0.0.1" not in stored.url
    assert "s3cret-pass" not in automation.call("get", "/api/notification-channels/ops").text
    again = automation.call(
        "put", "/api/notification-channels/ops", {"url": url, "events": ["recovered"]}
    )
    assert again.status_code == 200 and again.json()["events"] == ["recovered"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"url": "bogus://nowhere"}, "url", "not an apprise URL"),
        ({"url": "not a url at all"}, "url", "not an apprise URL"),
        ({"url": "json://169.254.169.254/latest"}, "url", "refused by the network policy"),
        ({"url": "json://127.0.0.1/hook", "teams": ["nobody"]}, "teams", "no team named nobody"),
        ({"url": "json://127.0.0.1/hook", "events": ["exploded"]}, "events[0]", "Input should be"),
        ({"url": "json://127.0.0.1/hook", "events": []}, "events", "at least 1"),
        ({"url": "json://127.0.0.1/hook", "colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_a_bad_channel_is_refused_with_its_field_and_nothing_stored(
    automation, db, body, field, reason
):
    channel("ops", "json://127.0.0.1:9/kept")
    answer = automation.call("put", "/api/notification-channels/ops", body)
    assert answer.status_code == 422, answer.json()
    assert reason in answer.json()["error"]["fields"][field]
    assert NotificationChannel.objects.get(name="ops").url_shown == "json://127.0.0.1:9/kept"


def test_channel_writes_need_the_scope_and_an_unlimited_token(make_token, db):
    body = {"url": "json://127.0.0.1/hook"}
    reader = ApiClient(make_token(["automation:read"]).secret)
    assert reader.call("put", "/api/notification-channels/ops", body).status_code == 403
    limited = ApiClient(make_token(["automation:write"], services=["db"]).secret)
    assert limited.call("put", "/api/notification-channels/ops", body).status_code == 403
    assert ApiClient().call("put", "/api/notification-channels/ops", body).status_code == 401


def test_deleting_a_channel(automation, db):
    channel("ops", "json://127.0.0.1:9/hook")
    assert automation.call("delete", "/api/notification-channels/ops").status_code == 204
    assert automation.call("delete", "/api/notification-channels/ops").status_code == 404
    assert automation.call("get", "/api/notification-channels").json() == []


@pytest.mark.parametrize(
    ("url", "status", "reason"),
    [
        ("json://[::1]:9/hook", 201, None),
        ("json://[::ffff:169.254.169.254]/x", 422, "link-local/metadata"),
        ("json://[fe80::1]/x", 422, "link-local"),
    ],
)
def test_ipv6_channel_hosts_are_judged_as_addresses(automation, db, url, status, reason):
    """A stranger's trial: bracketed IPv6 hosts were refused as names that do not resolve."""
    answer = automation.call("put", "/api/notification-channels/v6", {"url": url})
    assert answer.status_code == status, answer.json()
    if reason:
        assert reason in answer.json()["error"]["fields"]["url"]

"""The automation in the admin, per role: viewers read alerts and channels and change
nothing; operators make channels (through the same write path as the API: validated,
encrypted, audited, never shown back), plan maintenance and acknowledge alerts."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from automation.models import Alert, NotificationChannel
from healthchecks.status import Status
from portal.models import AuditEntry
from services.models import MaintenanceWindow
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db


def staff(client, role: str):
    user = User.objects.create_user(role, f"{role}@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


ADD = "/admin/automation/notificationchannel/add/"


def test_a_viewer_reads_and_changes_nothing(client):
    staff(client, "viewer")
    assert client.get("/admin/automation/alert/").status_code == 200
    assert client.get("/admin/automation/notificationchannel/").status_code == 200
    answer = client.post(ADD, {"name": "ops", "url": "json://127.0.0.1:9/x", "events": ["down"]})
    assert answer.status_code == 403
    assert not NotificationChannel.objects.exists()


def test_an_operator_makes_a_channel_through_the_write_path(client):
    staff(client, "operator")
    TeamFactory(name="core").members.add(User.objects.get(username="operator"))
    secret_url = "json://127.0.0.1:9/hooks/T0KEN-abcdef"
    # A channel for every team would hear of other teams' services: an admin's to make.
    every = client.post(ADD, {"name": "ops", "url": secret_url, "teams": "", "events": ["down"]})
    assert every.status_code == 200 and b"naming no team and no service" in every.content
    assert not NotificationChannel.objects.exists()
    answer = client.post(
        ADD, {"name": "ops", "url": secret_url, "teams": "core", "events": ["down"]}
    )
    assert answer.status_code == 302, answer.content[:2000]
    channel = NotificationChannel.objects.get(name="ops")
    assert channel.events == ["down"] and "T0KEN" not in channel.url
    assert AuditEntry.objects.filter(action="channel.create", actor="user:operator").exists()
    page = client.get(f"/admin/automation/notificationchannel/{channel.pk}/change/")
    assert b"T0KEN-abcdef" not in page.content

    refused = client.post(ADD, {"name": "bad", "url": "bogus://x", "events": ["down"]})
    assert refused.status_code == 200  # the form again, with the reason
    assert b"not an apprise URL" in refused.content
    assert not NotificationChannel.objects.filter(name="bad").exists()


def test_an_operator_acknowledges_and_plans_maintenance(client):
    service = ServiceFactory(name="db", team=TeamFactory(name="core"))
    alert = Alert.objects.create(service=service, status=Status.UNHEALTHY)
    staff(client, "operator")
    service.team.members.add(User.objects.get(username="operator"))
    client.post(
        "/admin/automation/alert/",
        {"action": "acknowledge", "_selected_action": [alert.pk]},
    )
    alert.refresh_from_db()
    assert alert.acknowledged_by == "user:operator"

    now = timezone.now()
    answer = client.post(
        "/admin/services/maintenancewindow/add/",
        {
            "services": [service.pk],
            "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": now.strftime("%H:%M:%S"),
            "ends_at_0": (now + timedelta(hours=2)).strftime("%Y-%m-%d"),
            "ends_at_1": (now + timedelta(hours=2)).strftime("%H:%M:%S"),
            "reason": "disk swap",
        },
    )
    assert answer.status_code == 302, answer.content[:3000]
    window = MaintenanceWindow.objects.get()
    assert list(window.services.values_list("name", flat=True)) == ["db"]
    assert AuditEntry.objects.filter(action="maintenance.create").exists()

"""The maintenance pages through Django's full stack: who may read and who may tick (checked
on the server), the HTMX fragment a tick answers with, evidence beside items, sign-off, and
past runs."""

import pytest
from django.utils import timezone

from checklists import runs
from checklists.models import ChecklistRun, ChecklistTemplate, Tick
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def daily_item():
    template = ChecklistTemplate.objects.get(period="daily")
    return runs.run_for(template), template.items.get(text="Check for predictive alerts")


def test_anonymous_people_go_to_the_login_page(client):
    answer = client.get("/maintenance/")
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")


def test_a_viewer_reads_every_routine_but_may_not_tick(client, bob):
    client.force_login(bob)
    page = client.get("/maintenance/").content.decode()
    for title in ("Daily maintenance", "Weekly maintenance", "Monthly", "Quarterly"):
        assert title in page
    assert "Analyze usage patterns" in page and "Plan improvements" in page
    assert 'name="done"' not in page  # no tick forms for a viewer
    run, item = daily_item()
    answer = client.post(f"/maintenance/runs/{run.id}/items/{item.id}/tick", {"done": "1"})
    assert answer.status_code == 403
    assert not Tick.objects.exists()


def test_an_operator_ticks_with_htmx_and_gets_the_item_back(client, alice):
    client.force_login(alice)
    run, item = daily_item()
    answer = client.post(
        f"/maintenance/runs/{run.id}/items/{item.id}/tick",
        {"done": "1", "note": "<b>looked</b>"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    fragment = answer.content.decode()
    assert "<html" not in fragment and f'id="item-{run.id}-{item.id}"' in fragment
    assert "ticked by user:alice" in fragment
    assert "&lt;b&gt;looked&lt;/b&gt;" in fragment  # a note is text, never markup
    assert 'value="0"' in fragment  # the button now unticks
    # The run's count follows without a reload (a stranger's trial saw "0/8" stay).
    assert f'id="progress-{run.id}" hx-swap-oob="true">1/8 done' in fragment
    tick = Tick.objects.get()
    assert (tick.done, tick.by, tick.note) == (True, "user:alice", "<b>looked</b>")
    # Without htmx: back to the run's page.
    answer = client.post(f"/maintenance/runs/{run.id}/items/{item.id}/tick", {"done": "0"})
    assert answer.status_code == 302 and answer["Location"] == f"/maintenance/runs/{run.id}/"


def test_items_show_live_evidence(client, bob):
    check = make_check(ServiceFactory(name="db"), name="tcp", is_critical=True)
    now = timezone.now()
    recording.record(
        [recording.Result(check.pk, now, now, ProbeOutcome(Status.UNHEALTHY, errors=["refused"]))]
    )
    client.force_login(bob)
    page = client.get("/maintenance/").content.decode()
    assert "<strong>db / tcp</strong>" in page
    assert "no service&#x27;s configuration drifts" in page  # the weekly drift item: nothing


def test_sign_off_needs_every_item_and_says_why_not(client, alice):
    client.force_login(alice)
    run, _ = daily_item()
    page = client.post(f"/maintenance/runs/{run.id}/sign-off", follow=True).content.decode()
    assert "Not signed off: 8 of 8 items are not ticked yet" in page
    for item in run.template.items.all():
        runs.tick(run.id, item.id, True, "", system_actor("tests"))
    page = client.post(f"/maintenance/runs/{run.id}/sign-off", follow=True).content.decode()
    assert "Signed off by <strong>user:alice</strong>" in page


def test_past_runs_stay_readable(client, bob):
    template = ChecklistTemplate.objects.get(period="weekly")
    old = runs.run_for(template, timezone.localdate().replace(year=2025, month=1, day=8))
    client.force_login(bob)
    history = client.get("/maintenance/history/").content.decode()
    assert "2025-W02" in history and "not signed off" in history
    page = client.get(f"/maintenance/runs/{old.id}/").content.decode()
    assert "Check for configuration drift" in page
    assert client.get("/maintenance/runs/999999/").status_code == 404
    assert ChecklistRun.objects.filter(label="2025-W02").count() == 1


def test_an_operator_starts_a_services_validation_and_a_viewer_may_not(client, alice, bob):
    ServiceFactory(name="ledger").team.members.add(alice)
    client.force_login(bob)
    form = {"template": "post-migration", "service": "ledger"}
    assert client.post("/maintenance/service-checklists", form).status_code == 403
    assert not ChecklistRun.objects.filter(service__name="ledger").exists()
    client.force_login(alice)
    answer = client.post("/maintenance/service-checklists", form)
    run = ChecklistRun.objects.get(service__name="ledger")
    assert answer["Location"] == f"/maintenance/runs/{run.id}/"
    page = client.get(answer["Location"]).content.decode()
    assert "Post-migration validation" in page and "Started by user:alice" in page
    assert "the service has no enabled checks" in page  # what the portal found, kept
    listing = client.get("/maintenance/").content.decode()
    assert "Post-migration validation of ledger" in listing
    bad = client.post("/maintenance/service-checklists", {**form, "service": "ghost"}, follow=True)
    assert "Not started: no service named" in bad.content.decode()

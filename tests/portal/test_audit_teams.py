"""Every audit entry keeps the teams that owned its object when it was written (what the audit
trail filters by team): a property over every write operation of the API (the write
contract's rows, each on an object of team ``core``), and the cases the API does not reach --
a service moved between teams (both), a deleted one (still its team), a service's checklist
(its team), the routines, tokens and what is every team's (none) -- and the migration that
gave the entries written before issue 26 their teams."""

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client

from automation.channels import ChannelIn, put_channel
from checklists import routines, runs
from portal import audit, tokens
from portal.auth import system_actor
from portal.models import AuditEntry, AuditTeam, Scope
from services import registry
from services.models import Service
from services.schemas import ServiceFieldsIn
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory
from tests.system import test_write_contract as contract

pytestmark = pytest.mark.django_db
ACTOR = system_actor("tests")


def teams(entry: AuditEntry) -> set[str]:
    return set(entry.teams.values_list("team", flat=True))


def written_since(before: set[int]):
    return AuditEntry.objects.exclude(id__in=before).order_by("id")


@pytest.fixture
def estate():
    contract.build_estate()  # team core: svc (a configuration, a check chk), other, elsewhere


# Tokens are no team's (below); every other write is on an object of team core.
OF_CORE = sorted(
    op
    for op, row in contract.CONTRACT.items()
    if row.audit and not str(row.audit).startswith("token.")
)


@pytest.mark.parametrize("operation_id", OF_CORE)
def test_every_write_operations_entry_is_of_the_team_that_owns_its_object(
    operation_id, estate, make_token
):
    row = contract.CONTRACT[operation_id]
    for prepare in row.setup:
        prepare()
    full = ApiClient(make_token(Scope.values).secret)
    before = set(AuditEntry.objects.values_list("id", flat=True))
    done = full.call(row.method, row.path, row.body)
    assert 200 <= done.status_code < 300, done.content
    entries = list(written_since(before))
    assert entries, operation_id
    for entry in entries:
        assert teams(entry) == {"core"}, (entry.action, entry.target)


def test_a_token_is_no_teams(estate):
    before = set(AuditEntry.objects.values_list("id", flat=True))
    tokens.issue_token("pipeline", ["registry:read"], teams=["core"], issuer=ACTOR)
    (entry,) = written_since(before)
    assert entry.action == "token.create" and teams(entry) == set()


def test_a_service_moved_between_teams_is_of_both(estate):
    TeamFactory(name="edge")
    before = set(AuditEntry.objects.values_list("id", flat=True))
    registry.patch_service("other", ServiceFieldsIn(team="edge"), ACTOR)
    (entry,) = written_since(before)
    assert entry.action == "service.update" and teams(entry) == {"core", "edge"}


def test_a_deleted_service_keeps_its_team(estate):
    registry.delete_service("elsewhere", ACTOR)
    entry = AuditEntry.objects.get(action="service.delete", target="elsewhere")
    assert teams(entry) == {"core"}
    assert not Service.objects.filter(name="elsewhere").exists()


def test_a_channel_for_every_team_is_no_teams_and_one_for_two_teams_is_of_both(estate):
    TeamFactory(name="edge")
    put_channel("all", ChannelIn(url="json://127.0.0.1:9/a", teams=[], events=["down"]), ACTOR)
    put_channel(
        "two", ChannelIn(url="json://127.0.0.1:9/b", teams=["core", "edge"], events=["down"]), ACTOR
    )
    assert teams(AuditEntry.objects.get(target="all")) == set()
    assert teams(AuditEntry.objects.get(target="two")) == {"core", "edge"}


def test_a_window_is_of_its_team_and_of_its_services_teams(estate):
    from services import maintenance

    edge = TeamFactory(name="edge")
    ServiceFactory(name="cache", team=edge)
    start = contract._TOMORROW
    spec = maintenance.WindowIn(["cache"], "core", start, start + contract.timedelta(hours=1), "")
    window = maintenance.create_window(spec, ACTOR)
    assert teams(AuditEntry.objects.get(target=str(window.id))) == {"core", "edge"}


def test_a_services_checklist_is_its_teams_and_a_routine_is_no_teams(estate):
    routines.install(apps)
    run = runs.start_for_service("post-migration", "svc", ACTOR)
    item = run.template.items.filter(verify="").first()
    runs.tick(run.id, item.id, True, "", ACTOR)
    daily = runs.current_runs()[0]
    runs.tick(daily.id, daily.template.items.first().id, True, "", ACTOR)
    ticks = AuditEntry.objects.filter(action="checklist.tick").order_by("id")
    assert [teams(e) for e in ticks] == [{"core"}, set()]
    assert teams(AuditEntry.objects.get(action="checklist.start")) == {"core"}


def test_an_admin_deletion_is_of_the_team_of_the_service_it_belonged_to(estate):
    from services.models import Deployment

    deployment = Deployment.objects.create(
        service=Service.objects.get(name="svc"), version="9", status="succeeded"
    )
    admin = User.objects.create_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    answer = client.post(f"/admin/services/deployment/{deployment.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert teams(AuditEntry.objects.get(action="deployment.delete")) == {"core"}


def test_entries_written_before_teams_were_kept_get_them_from_the_migration(estate):
    """The entries of issue 26's past: the migration finds their teams as the objects are now;
    a deleted object's entries stay without."""
    from importlib import import_module

    migration = import_module("pages.migrations.0001_audit_teams_of_old_entries")
    put_channel(
        "ops", ChannelIn(url="json://127.0.0.1:9/x", teams=["core"], events=["down"]), ACTOR
    )
    registry.delete_service("elsewhere", ACTOR)
    for target_type, target in [("check", "svc/chk"), ("alert", "svc#3"), ("team", "core")]:
        audit.record(ACTOR, f"{target_type}.x", target_type, target)
    AuditTeam.objects.all().delete()  # as before issue 26
    AuditEntry.objects.filter(action="service.delete").update(changes={})
    migration.owning_teams(apps)
    found = {(e.target_type, e.target): teams(e) for e in AuditEntry.objects.all()}
    assert found[("check", "svc/chk")] == found[("alert", "svc#3")] == {"core"}
    assert found[("team", "core")] == found[("notification_channel", "ops")] == {"core"}
    assert found[("service", "svc")] == {"core"}
    assert found[("service", "elsewhere")] == set()  # deleted: nothing to find it by


def test_the_team_is_the_one_of_the_moment_of_writing(estate):
    """A service moved later keeps its old entries under its old team."""
    registry.patch_service("svc", ServiceFieldsIn(description="before the move"), ACTOR)
    TeamFactory(name="edge")
    registry.patch_service("svc", ServiceFieldsIn(team="edge"), ACTOR)
    old = AuditEntry.objects.get(changes__description__1="before the move")
    assert teams(old) == {"core"}

"""Applying manifests: the registry's one write path."""

import pytest

from portal.auth import system_actor
from portal.errors import Conflict, InvalidInput, NotFound
from portal.models import AuditEntry
from services import registry
from services.models import Dependency, LifecycleTransition, Service, Team
from services.schemas import ManifestIn, ServiceFieldsIn, ServiceIn
from tests.factories import DependencyFactory, ServiceFactory, TeamFactory

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
ACTOR = system_actor("test")


def apply(document: dict) -> dict:
    return registry.apply_manifest(ManifestIn.model_validate(document), ACTOR).as_dict()


def edges() -> set[tuple[str, str, str]]:
    return set(Dependency.objects.values_list("service__name", "depends_on__name", "kind"))


def snapshot():
    return (
        sorted(Service.objects.values_list("name", "team__name", "is_critical", "description")),
        edges(),
        sorted(Team.objects.values_list("name", flat=True)),
    )


def test_it_creates_services_with_forward_dependencies(manifest):
    result = apply(manifest)
    assert result["created"] == ["payments", "auth", "ledger-db"]
    assert result["updated"] == result["unchanged"] == []
    assert result["teams"]["created"] == ["core"]
    assert edges() == {("payments", "auth", "hard"), ("payments", "ledger-db", "soft")}
    assert Service.objects.get(name="payments").is_critical


def test_the_same_manifest_twice_changes_nothing(manifest):
    apply(manifest)
    before = list(Service.objects.values_list("name", "updated_at"))
    audit_rows = AuditEntry.objects.count()
    result = apply(manifest)
    assert result["unchanged"] == ["payments", "auth", "ledger-db"]
    assert result["created"] == result["updated"] == []
    assert result["teams"]["unchanged"] == ["core"]
    assert list(Service.objects.values_list("name", "updated_at")) == before
    assert AuditEntry.objects.count() == audit_rows


def test_it_reports_only_what_changed(manifest):
    apply(manifest)
    manifest["services"][1]["description"] = "Signs people in"
    manifest["services"][0]["dependencies"] = ["auth"]
    result = apply(manifest)
    assert result["updated"] == ["payments", "auth"]
    assert result["unchanged"] == ["ledger-db"]
    assert edges() == {("payments", "auth", "hard")}
    entry = AuditEntry.objects.filter(action="service.update", target="auth").get()
    assert entry.changes == {"description": ["", "Signs people in"]}
    assert entry.actor == "system:test"


def test_fields_left_out_keep_their_values(manifest):
    apply(manifest)
    apply({"services": [{"name": "payments", "description": "Takes money"}]})
    payments = Service.objects.get(name="payments")
    assert payments.is_critical and payments.team.name == "core"
    assert payments.description == "Takes money"
    assert ("payments", "auth", "hard") in edges()


def test_tags_are_replaced_as_a_set(manifest):
    manifest["services"][1]["tags"] = ["tier:1", "public", "tier:1"]
    apply(manifest)
    assert sorted(Service.objects.get(name="auth").tags.values_list("name", flat=True)) == [
        "public",
        "tier:1",
    ]
    result = apply({"services": [{"name": "auth", "tags": ["public"]}]})
    assert result["updated"] == ["auth"]
    assert list(Service.objects.get(name="auth").tags.values_list("name", flat=True)) == ["public"]


def test_a_new_service_records_its_registration(manifest):
    apply(manifest)
    row = LifecycleTransition.objects.get(service__name="auth")
    assert (row.from_status, row.to_status, row.actor) == ("", "registered", "system:test")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda m: m["services"][1].update(team="nobody"), "services[1].team", "unknown team"),
        (lambda m: m["services"][2].pop("team"), "services[2].team", "required for a new"),
        (
            lambda m: m["services"][0]["dependencies"].append("ghost"),
            "services[0].dependencies[2]",
            "unknown service 'ghost'",
        ),
        (
            lambda m: m["services"][1].update(dependencies=["auth"]),
            "services[1].dependencies[0]",
            "cannot depend on itself",
        ),
        (
            lambda m: m["services"].append({"name": "auth", "team": "core"}),
            "services[3].name",
            "appears twice",
        ),
        (
            lambda m: m["services"][0]["dependencies"].append("auth"),
            "services[0].dependencies[2]",
            "listed twice",
        ),
    ],
)
def test_one_bad_service_applies_nothing(manifest, change, field, reason):
    TeamFactory(name="other")
    before = snapshot()
    change(manifest)
    with pytest.raises(InvalidInput) as caught:
        apply(manifest)
    assert reason in caught.value.fields[field]
    assert "nothing was applied" in caught.value.message
    assert snapshot() == before


def test_it_refuses_a_cycle_inside_the_manifest_and_names_it(manifest):
    manifest["services"][1]["dependencies"] = ["ledger-db"]
    manifest["services"][2]["dependencies"] = ["payments"]
    with pytest.raises(InvalidInput) as caught:
        apply(manifest)
    error = caught.value
    assert error.code == "dependency_cycle"
    cycle = error.extra["cycle"]
    assert cycle[0] == cycle[-1] and {"payments", "ledger-db"} <= set(cycle)
    assert " -> ".join(cycle) in error.message
    assert Service.objects.count() == 0


def test_it_refuses_a_cycle_closed_against_stored_services(manifest):
    apply(manifest)
    before = snapshot()
    with pytest.raises(InvalidInput) as caught:
        apply({"services": [{"name": "ledger-db", "dependencies": ["payments"]}]})
    assert caught.value.extra["cycle"] == ["ledger-db", "payments", "ledger-db"]
    assert "services[0].dependencies" in caught.value.fields
    assert snapshot() == before


def test_teams_are_created_and_updated(manifest):
    apply(manifest)
    result = apply({"teams": [{"name": "core", "contact": "#core"}, {"name": "new"}]})
    assert result["teams"] == {"created": ["new"], "updated": ["core"], "unchanged": []}
    assert Team.objects.get(name="core").contact == "#core"


def test_create_refuses_an_existing_name():
    ServiceFactory(name="taken")
    with pytest.raises(Conflict) as caught:
        registry.create_service(ServiceIn(name="taken", team="x"), ACTOR)
    assert caught.value.code == "already_exists"


def test_patch_refuses_a_missing_service():
    with pytest.raises(NotFound):
        registry.patch_service("ghost", ServiceFieldsIn(description="x"), ACTOR)


def test_single_service_errors_have_plain_field_paths():
    with pytest.raises(InvalidInput) as caught:
        registry.upsert_service("web", ServiceFieldsIn(team="nope"), ACTOR)
    assert list(caught.value.fields) == ["team"]


def test_upsert_refuses_a_body_naming_another_service():
    from services.schemas import ServiceUpsertIn

    with pytest.raises(InvalidInput) as caught:
        registry.upsert_service("web", ServiceUpsertIn(name="api", team="t"), ACTOR)
    assert "name" in caught.value.fields


def test_delete_is_refused_while_others_depend():
    link = DependencyFactory(kind="soft")
    with pytest.raises(Conflict) as caught:
        registry.delete_service(link.depends_on.name, ACTOR)
    assert caught.value.extra["dependents"] == [{"service": link.service.name, "kind": "soft"}]
    registry.delete_service(link.service.name, ACTOR)
    registry.delete_service(link.depends_on.name, ACTOR)
    assert not Service.objects.exists()
    assert AuditEntry.objects.filter(action="service.delete").count() == 2


def test_set_and_remove_one_dependency():
    a, b = ServiceFactory(name="a"), ServiceFactory(name="b")
    registry.set_dependency("a", "b", "soft", ACTOR)
    assert edges() == {("a", "b", "soft")}
    registry.set_dependency("a", "b", "hard", ACTOR)
    assert edges() == {("a", "b", "hard")}
    with pytest.raises(InvalidInput):
        registry.set_dependency("b", "a", "hard", ACTOR)
    registry.remove_dependency("a", "b", ACTOR)
    assert edges() == set()
    with pytest.raises(NotFound):
        registry.remove_dependency("a", "b", ACTOR)
    assert a.pk and b.pk

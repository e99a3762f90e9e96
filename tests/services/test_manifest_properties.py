"""The README's "Manifest and upsert rule" as properties over generated manifests, applied
through the API a pipeline calls: the same document twice changes nothing; a field an item
gives replaces the stored value (lists too) and a field it leaves out keeps it."""

import pytest
from hypothesis import HealthCheck as Suppress
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.models import Dependency, Service, Team

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

NAMES = ["alpha", "beta", "gamma"]
TAGS = ["edge", "tier:0", "tier:1", "db"]
# Text as people write it (a NUL or a lone surrogate is refused: test_hostile_input.py).
TEXT = st.characters(blacklist_categories=("Cs", "Cc"))


def fields_of(index: int) -> st.SearchStrategy:
    """Every field an item may give; dependencies point only to earlier services (no cycle)."""
    return st.fixed_dictionaries(
        {
            "display_name": st.text(TEXT, max_size=20),
            "description": st.text(TEXT, max_size=40),
            "tags": st.lists(st.sampled_from(TAGS), unique=True),
            "is_critical": st.booleans(),
            "slo_target": st.none() | st.sampled_from([99.0, 99.9, 99.95]),
            "deployed_version": st.sampled_from(["", "1.0", "2.3.4"]),
            "dependencies": st.lists(
                st.builds(
                    lambda service, kind: {"service": service, "kind": kind},
                    st.sampled_from(NAMES[:index] or ["x"]),
                    st.sampled_from(["hard", "soft"]),
                ),
                max_size=index,
                unique_by=lambda d: d["service"],
            )
            if index
            else st.just([]),
        }
    )


items = st.tuples(*(fields_of(i) for i in range(len(NAMES))))


def manifest(fields: tuple[dict, ...]) -> dict:
    return {
        "teams": [{"name": "core"}],
        "services": [
            {"name": name, "team": "core", **values}
            for name, values in zip(NAMES, fields, strict=True)
        ],
    }


def stored(api, name: str) -> dict:
    body = api.call("GET", f"/api/services/{name}").json()
    return {
        "display_name": body["display_name"],
        "description": body["description"],
        "tags": sorted(body["tags"]),
        "is_critical": body["is_critical"],
        "slo_target": body["slo_target"],
        "deployed_version": body["deployed_version"],
        "dependencies": sorted((d["service"], d["kind"]) for d in body["dependencies"]),
        "updated_at": body["updated_at"],
    }


def expected(values: dict) -> dict:
    return {
        **values,
        "tags": sorted(values["tags"]),
        "dependencies": sorted((d["service"], d["kind"]) for d in values["dependencies"]),
    }


def fresh_registry() -> None:
    Dependency.objects.all().delete()
    Service.objects.all().delete()
    Team.objects.all().delete()


SETTINGS = hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[Suppress.function_scoped_fixture]
)


@SETTINGS
@given(fields=items)
def test_the_same_document_twice_changes_nothing(api, fields):
    fresh_registry()
    document = manifest(fields)
    assert api.call("POST", "/api/registry/apply", document).status_code == 200
    before = {name: stored(api, name) for name in NAMES}
    again = api.call("POST", "/api/registry/apply", document).json()
    assert again["created"] == again["updated"] == [] and again["unchanged"] == NAMES
    assert {name: stored(api, name) for name in NAMES} == before


@SETTINGS
@given(fields=items, update=st.data())
def test_a_field_given_replaces_the_stored_value_and_one_left_out_keeps_it(api, fields, update):
    fresh_registry()
    api.call("POST", "/api/registry/apply", manifest(fields))
    index = update.draw(st.integers(min_value=0, max_value=len(NAMES) - 1))
    name = NAMES[index]
    new = update.draw(fields_of(index))
    given_keys = update.draw(st.sets(st.sampled_from(sorted(new))))
    item = {"name": name, **{key: new[key] for key in given_keys}}
    answer = api.call("POST", "/api/registry/apply", {"services": [item]})
    assert answer.status_code == 200, answer.json()
    now = stored(api, name)
    for key, value in expected(fields[index]).items():
        want = expected(new)[key] if key in given_keys else value
        assert now[key] == want, (key, given_keys)

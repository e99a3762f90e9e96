"""How the provider's groups read as roles and teams (portal.directory), and how the maps
are written in the environment (portal.env.env_map)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import directory, env


@pytest.fixture
def maps(settings):
    settings.OIDC_ROLE_MAP = {"portal-admins": "admin", "ops": "operator"}
    settings.OIDC_TEAM_MAP = {"payments-engineers": "payments"}
    settings.OIDC_TEAM_PREFIX = "team-"
    settings.OIDC_GROUPS_CLAIM = "groups"


def test_groups_map_to_roles_and_teams_by_name_and_by_prefix(maps):
    found = directory.mapping_of(["ops", "payments-engineers", "team-search", "team-", "other"])
    assert found.roles == {"operator"} and found.teams == {"payments", "search"}
    assert directory.mapping_of(["other", "team-x"]).roles == frozenset()


def test_the_groups_claim_may_be_one_name_a_list_or_a_dotted_path(maps, settings):
    assert directory.groups_of({"groups": "ops"}) == ["ops"]
    assert directory.groups_of({"groups": ["ops", 3, None]}) == ["ops"]
    assert directory.groups_of({}) == []
    settings.OIDC_GROUPS_CLAIM = "realm_access.roles"
    assert directory.groups_of({"realm_access": {"roles": ["ops"]}}) == ["ops"]


def test_the_user_name_comes_from_the_claim_else_from_sub(settings):
    settings.OIDC_USERNAME_CLAIM = "preferred_username"
    assert directory.username_of({"sub": "s1", "preferred_username": " dana "}) == "dana"
    assert directory.username_of({"sub": "s1", "preferred_username": ""}) == "s1"
    assert directory.username_of({"sub": "s1"}) == "s1"


def test_a_map_is_pairs_or_a_json_object(monkeypatch):
    monkeypatch.setenv("X_MAP", "portal-admins=admin, ops = operator")
    assert env.env_map("X_MAP", choices=directory.ROLES) == {
        "portal-admins": "admin",
        "ops": "operator",
    }
    monkeypatch.setenv("X_MAP", '{"cn=ops,dc=example": "operator"}')
    assert env.env_map("X_MAP") == {"cn=ops,dc=example": "operator"}
    monkeypatch.delenv("X_MAP")
    assert env.env_map("X_MAP") == {}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("ops=root", "'root' (for 'ops') must be one of viewer, operator, admin"),
        ("ops", "'ops' is not group=value"),
        ("=admin", "an empty group or value"),
        ('{"ops": 1}', "a JSON object of strings to strings"),
        ("{nope", "not a JSON object"),
    ],
)
def test_a_map_that_cannot_be_read_stops_the_start(monkeypatch, raw, says):
    monkeypatch.setenv("X_MAP", raw)
    with pytest.raises(ImproperlyConfigured) as refused:
        env.env_map("X_MAP", choices=directory.ROLES)
    assert str(refused.value).startswith("X_MAP: ") and says in str(refused.value)

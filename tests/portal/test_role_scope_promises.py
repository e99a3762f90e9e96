"""The scopes of each role, as the README ("Authentication and scopes") states them -- pinned
here from its words, not from the code's table, so a change to either fails:

- viewers read (registry:read, config:read) and hold automation:read;
- operators hold all of these but config:secrets and audit:read;
- admins everything; superusers are admins; a user in no role group is a viewer.

Each person logs in and calls every write operation of the API (the write contract's rows:
each with the scope it needs), the reads of each read scope, and reads a secret: where the
role lacks the scope, a 403 naming it; where it holds it, never that refusal.
"""

import json

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client

from portal.auth import system_actor
from services import configs
from services.models import Team
from tests.factories import seed_schema_with_secret
from tests.system.test_write_contract import CONTRACT, build_estate

pytestmark = pytest.mark.django_db

READS = {"registry:read", "config:read", "automation:read"}
EVERY = {
    "registry:read",
    "registry:write",
    "config:read",
    "config:write",
    "config:secrets",
    "health:write",
    "automation:read",
    "automation:write",
    "checklists:write",
    "audit:read",
    "changes:read",
}
README_SCOPES = {
    "viewer": READS,
    "no role group": READS,
    "operator": EVERY - {"config:secrets", "audit:read"},
    "admin": EVERY,
    "superuser": EVERY,
}
READ_CALLS = {  # a read that needs each read scope
    "registry:read": "/api/services/svc",
    "config:read": "/api/services/svc/config",
    "automation:read": "/api/alerts",
    "audit:read": "/api/tokens",
    "changes:read": "/api/audit",
}


def person(role: str) -> Client:
    user = User.objects.create_user(
        role.replace(" ", "-"), password="pw", is_superuser=role == "superuser"
    )
    if role in ("viewer", "operator", "admin"):
        user.groups.add(Group.objects.get(name=role))
    Team.objects.get(name="core").members.add(user)  # an operator changes its team's only
    client = Client()
    client.force_login(user)
    return client


def scope_refused(answer, scope: str) -> bool:
    if answer.status_code != 403:
        return False
    return answer.json()["error"].get("required_scope") == scope


def test_the_readme_lists_every_scope_there_is():
    from portal.models import Scope

    assert set(Scope.values) == EVERY


@pytest.mark.parametrize("role", README_SCOPES)
def test_each_role_holds_the_scopes_the_readme_gives_it(role):
    build_estate()
    held = README_SCOPES[role]
    client = person(role)
    for scope, path in READ_CALLS.items():
        answer = client.get(path)
        assert scope_refused(answer, scope) == (scope not in held), (role, path, answer.status_code)
    for operation, row in CONTRACT.items():
        with transaction.atomic():  # each write on the estate as it was
            for prepare in row.setup:
                prepare()
            body = "" if row.body is None else json.dumps(row.body)
            answer = client.generic(
                row.method.upper(), row.path, body, content_type="application/json"
            )
            transaction.set_rollback(True)
        refused = scope_refused(answer, row.scope)
        assert refused == (row.scope not in held), (role, operation, answer.content[:200])


@pytest.mark.parametrize("role", README_SCOPES)
def test_only_a_role_with_config_secrets_reads_a_secret(role):
    build_estate()
    actor = system_actor("test")
    configs.put_schema("svc", seed_schema_with_secret(), actor)
    current = configs.read("svc", None, reveal_secrets=False, actor=actor)["version"]
    configs.publish("svc", {"api_timeout": 5, "db_password": "hunter2-canary"}, current, actor)
    shown = person(role).get("/api/services/svc/config").content.decode()
    assert ("hunter2-canary" in shown) == ("config:secrets" in README_SCOPES[role]), role

"""Roles for people (docs/decisions.md): a person's API scopes come from their role group;
a superuser is an admin whatever their groups, and a person in no group is a viewer. Through
the API with a session, as the pages' own calls make them."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db


def session(user: User) -> Client:
    client = Client()
    client.force_login(user)
    client.get("/accounts/login/")
    client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    return client


@pytest.fixture
def estate():
    ServiceFactory(name="web", team=TeamFactory(name="core"))


def test_a_superuser_in_no_group_is_an_admin(estate):
    root = User.objects.create_superuser("root", "root@example.invalid", "pw")
    assert not root.groups.exists()
    client = session(root)
    assert client.get("/api/security-events").status_code == 200  # audit:read: admins only
    assert client.get("/api/tokens").status_code == 200
    changed = client.patch(
        "/api/services/web", {"description": "any team's"}, content_type="application/json"
    )
    assert changed.status_code == 200  # admins change every team's services


def test_a_person_in_no_group_is_a_viewer(estate):
    nobody = User.objects.create_user("nobody", "nobody@example.invalid", "pw")
    assert not nobody.groups.exists()
    client = session(nobody)
    assert client.get("/api/services/web").status_code == 200  # reads are open to viewers
    refused = client.patch(
        "/api/services/web", {"description": "mine now"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["required_scope"] == "registry:write"
    assert client.get("/api/security-events").status_code == 403

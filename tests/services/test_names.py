"""Names end where they end: a trailing newline is not part of a valid name ("$" would let
"svc-a\n" register beside "svc-a")."""

import pytest

from healthchecks.models import HealthCheck
from services.models import Service, Team
from tests.conftest import ApiClient
from tests.factories import ServiceFactory


@pytest.fixture
def writer(make_token):
    return ApiClient(make_token(["registry:read", "registry:write", "health:write"]).secret)


def test_a_service_name_with_a_trailing_newline_is_refused(writer):
    Team.objects.create(name="core")
    response = writer.call("post", "/api/services", {"name": "svc-a\n", "team": "core"})
    assert response.status_code == 422
    assert "is not a valid name" in response.json()["error"]["fields"]["name"]
    assert not Service.objects.exists()


def test_a_name_with_a_trailing_newline_in_the_path_is_refused(writer):
    Team.objects.create(name="core")
    response = writer.call("put", "/api/services/svc-a%0A", {"team": "core"})
    assert response.status_code == 422
    assert not Service.objects.exists()


def test_a_team_name_with_a_trailing_newline_is_refused(writer):
    response = writer.call("put", "/api/teams/core%0A", {})
    assert response.status_code == 422
    manifest = {"teams": [{"name": "core\n"}]}
    assert writer.call("post", "/api/registry/apply", manifest).status_code == 422
    assert not Team.objects.exists()


def test_a_check_name_with_a_trailing_newline_is_refused(writer):
    service = ServiceFactory()
    path = f"/api/services/{service.name}/checks/http%0A"
    response = writer.call("put", path, {"kind": "tcp", "target": "127.0.0.1:9"})
    assert response.status_code == 422
    assert not HealthCheck.objects.exists()


def test_the_model_validators_refuse_it_too():
    """The admin's forms validate through the models' validators."""
    from django.core.exceptions import ValidationError

    from portal.fields import name_validator, tag_validator

    with pytest.raises(ValidationError):
        name_validator("svc-a\n")
    with pytest.raises(ValidationError):
        tag_validator("tier:1\n")
    name_validator("svc-a")

"""The README ("Security events"): admins read them on GET /api/security-events, filtered by
``kind``, ``who`` and ``since`` -- ``who`` is held here (kind and since in
test_security_events.py): only that caller's events, whoever else was refused meanwhile."""

import pytest

from portal.models import SecurityEvent
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_the_api_lists_one_callers_events_by_who(make_token):
    SecurityEvent.objects.all().delete()
    reader = ApiClient(make_token(["registry:read"], name="reader").secret)
    viewer = ApiClient(make_token(["automation:read"], name="viewer").secret)
    assert reader.call("POST", "/api/services", {"name": "x", "team": "t"}).status_code == 403
    assert viewer.call("POST", "/api/services", {"name": "x", "team": "t"}).status_code == 403
    assert ApiClient("svp_made-up").call("GET", "/api/services").status_code == 401
    auditor = ApiClient(make_token(["audit:read"], name="auditor").secret)
    mine = auditor.call("GET", "/api/security-events?who=token:reader").json()["items"]
    assert [(e["who"], e["kind"]) for e in mine] == [("token:reader", "permission_denied")]
    anonymous = auditor.call("GET", "/api/security-events?who=anonymous").json()["items"]
    assert [e["kind"] for e in anonymous] == ["token_invalid"]
    both = auditor.call("GET", "/api/security-events?kind=permission_denied").json()["items"]
    assert sorted(e["who"] for e in both) == ["token:reader", "token:viewer"]

"""Heartbeat URLs are credentials (docs/decisions.md): a heartbeat check gets a 192-bit random
token, the URL holding it needs no other authentication (cron jobs call it with curl), and it is
rotated by recreating the check. Through the API and the URL as a job calls it."""

import base64
import re

import pytest
from django.test import Client

from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db
CHECKS = "/api/services/nightly-jobs/checks"


@pytest.fixture
def ops(make_token):
    ServiceFactory(name="nightly-jobs")
    return ApiClient(make_token(["registry:read", "registry:write", "health:write"]).secret)


def make_heartbeat(ops: ApiClient, name: str) -> str:
    answer = ops.call("PUT", f"{CHECKS}/{name}", {"kind": "heartbeat", "interval": 3600})
    assert answer.status_code == 201, answer.content
    return answer.json()["heartbeat_url"]


def path_of(url: str) -> str:
    return url[url.index("/health/heartbeat/") :]


def test_a_heartbeat_url_holds_192_random_bits_and_needs_no_other_credential(ops):
    urls = [make_heartbeat(ops, f"job-{i}") for i in range(20)]
    secrets = [url.rsplit("/", 1)[1] for url in urls]
    assert len(set(secrets)) == 20
    for secret in secrets:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", secret), secret
        assert len(base64.urlsafe_b64decode(secret)) * 8 == 192
    job = Client(enforce_csrf_checks=True)  # no session, no token, no CSRF: a cron job's curl
    for method in ("get", "post"):
        answer = getattr(job, method)(path_of(urls[0]))
        assert answer.status_code == 200 and answer.content == b"OK\n"
    assert job.post(path_of(urls[0]) + "/fail").status_code == 200
    state = ops.call("GET", f"{CHECKS}/job-0").json()
    assert state["status"] == "unhealthy"  # the failure it reported counts


def test_recreating_the_check_rotates_its_url(ops):
    old = make_heartbeat(ops, "backup")
    job = Client()
    assert job.post(path_of(old)).status_code == 200
    assert ops.call("DELETE", f"{CHECKS}/backup").status_code in (200, 204)
    new = make_heartbeat(ops, "backup")
    assert new != old
    gone = job.post(path_of(old))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert job.post(path_of(new)).status_code == 200

"""The portal behind a proxy, served as in production: gunicorn started with the config file the
Dockerfile, compose and the Kubernetes manifests use (portal/gunicorn.conf.py), its peer
(127.0.0.1) a trusted proxy. A header or URI over the portal's limits gets the portal's
answer in the error shape (431, 414), not gunicorn's HTML; a security event records the
client's address from X-Forwarded-For, the one the rate limiter counts by."""

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal.models import SecurityEvent
from tests.conftest import database_url
from tests.healthchecks.servers import closed_port

BASE = Path(settings.BASE_DIR)
CONFIG = "portal/gunicorn.conf.py"


def start_gunicorn(**environ: str) -> tuple[subprocess.Popen, int]:
    """gunicorn as the Dockerfile runs it (its config file), on a free port, one worker."""
    port = closed_port()
    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "warning",
        "RATE_LIMITS_ENABLED": "false",
        **environ,
    }
    command = [sys.executable, "-m", "gunicorn", "-c", CONFIG]
    server = subprocess.Popen(
        [*command, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", os.devnull],
        cwd=BASE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=1)
            return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    pytest.fail("gunicorn did not start")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def proxied(django_db_setup):
    """The portal behind a proxy at 127.0.0.1 (the tests' own address)."""
    server, port = start_gunicorn(TRUSTED_PROXIES="127.0.0.1")
    yield port
    stop(server)


def send(port: int, method: str, target: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """One request as written (no client-side limits); (status, content type, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


# Sizes over the portal's limits yet under gunicorn's ceilings: each must be the portal's.
HEADER_SIZES = st.integers(settings.API_MAX_HEADER_BYTES + 1, settings.API_MAX_HEADERS_TOTAL_BYTES)
URI_SIZES = st.integers(settings.API_MAX_URL_BYTES + 1, 8190 - len("OPTIONS  HTTP/1.1"))


@given(size=HEADER_SIZES)
@hypothesis_settings(max_examples=25, deadline=None)
def test_a_header_over_the_portals_limit_gets_the_portals_431(proxied, size):
    name = "X-Big"
    status, kind, body = send(proxied, "GET", "/api/services", {name: "a" * (size - len(name))})
    assert (status, kind) == (431, "application/json"), body[:200]
    error = error_of(body)
    assert error["code"] == "request_header_fields_too_large"
    limit = settings.API_MAX_HEADER_BYTES
    assert error["fields"] == {f"headers.{name}": f"{size} bytes; at most {limit}"}
    assert error["request_id"]


@given(size=URI_SIZES, method=st.sampled_from(["GET", "POST", "DELETE", "OPTIONS"]))
@hypothesis_settings(max_examples=25, deadline=None)
def test_a_uri_over_the_portals_limit_gets_the_portals_414(proxied, size, method):
    prefix = "/api/services?q="
    target = prefix + "a" * (size - len(prefix))
    status, kind, body = send(proxied, method, target, {"Content-Length": "0"})
    assert (status, kind) == (414, "application/json"), body[:200]
    error = error_of(body)
    assert error["code"] == "uri_too_long" and error["limit"] == settings.API_MAX_URL_BYTES
    assert error["fields"] == {"uri": f"{size} bytes; at most {settings.API_MAX_URL_BYTES}"}


def test_a_uri_and_headers_within_the_limits_are_served(proxied):
    target = "/health/?q=" + "a" * (settings.API_MAX_URL_BYTES - len("/health/?q="))
    headers = {"X-Big": "a" * (settings.API_MAX_HEADER_BYTES - len("X-Big"))}
    assert send(proxied, "GET", target, headers)[0] == 200


@pytest.mark.django_db(transaction=True)
def test_a_security_event_records_the_client_behind_the_trusted_proxy(proxied):
    """The proxy (the peer, trusted) says whom it forwarded for; the forged leftmost address
    is not believed, and the event names the address the rate limiter counts by."""
    SecurityEvent.objects.all().delete()  # what servers of other tests committed
    headers = {"Authorization": "Bearer svp_nobody", "X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    assert send(proxied, "GET", "/api/services", headers)[0] == 401
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.TOKEN_INVALID)
    assert event.client_ip == "203.0.113.7"


@pytest.mark.django_db(transaction=True)
def test_without_a_trusted_proxy_the_peer_is_the_client():
    SecurityEvent.objects.all().delete()
    server, port = start_gunicorn(TRUSTED_PROXIES="")
    try:
        headers = {"Authorization": "Bearer svp_nobody", "X-Forwarded-For": "203.0.113.7"}
        assert send(port, "GET", "/api/services", headers)[0] == 401
    finally:
        stop(server)
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.TOKEN_INVALID)
    assert event.client_ip == "127.0.0.1"


def test_the_dockerfile_compose_and_kubernetes_run_gunicorn_with_the_config_file():
    dockerfile = (BASE / "Dockerfile").read_text()
    assert f'CMD ["gunicorn", "-c", "{CONFIG}"]' in dockerfile
    compose = yaml.safe_load((BASE / "docker-compose.yml").read_text())
    assert compose["services"]["web"]["command"] == ["gunicorn", "-c", CONFIG]
    web = yaml.safe_load((BASE / "deploy" / "k8s" / "web.yaml").read_text())
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gunicorn", "-c", CONFIG]

"""The test suite's OpenID provider (tests/oidc_provider.py) as a fixture: its own process on
a free loopback port, stopped by its PID after the module; the portal's OIDC settings pointed
at it; and ``sign_in``, which follows the redirects of a sign-in with Django's test client
(the provider's hops over real HTTP)."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

PROVIDER = Path(__file__).resolve().parents[1] / "oidc_provider.py"
CLIENT_ID = "service-portal"
CLIENT_SECRET = "a-client-secret-for-tests"
ROLE_MAP = {"portal-admins": "admin", "portal-ops": "operator", "portal-readers": "viewer"}


class RunningProvider:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def control(self, **state) -> None:
        answer = requests.post(f"{self.url}/_control", json=state, timeout=5)
        assert answer.status_code == 200, answer.text

    def person(self, username: str, groups: list[str], sub: str | None = None, **claims) -> None:
        """Who the provider signs in next (``sub`` defaults to one of the name's own)."""
        self.control(
            claims={
                "sub": sub or f"sub-{username}",
                "preferred_username": username,
                "email": f"{username}@example.invalid",
                "groups": groups,
                **claims,
            }
        )

    def log(self) -> dict:
        return requests.get(f"{self.url}/_log", timeout=5).json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def provider():
    process = subprocess.Popen(
        [sys.executable, str(PROVIDER), "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("PORT "):
        process.kill()
        pytest.fail(f"the test provider did not start: {line!r}")
    running = RunningProvider(process, int(line.split()[1]))
    yield running
    running.stop()


@pytest.fixture
def oidc(provider, settings):
    """The portal signs in through the test provider; the provider behaves and signs in a
    person of the operators' group until the test says otherwise."""
    settings.OIDC_ISSUER = provider.url
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.OIDC_TEAM_MAP = {"payments-engineers": "payments"}
    settings.OIDC_TEAM_PREFIX = "team-"
    provider.control(misbehave="", end_session=True, forget_log=True)
    provider.person("dana", ["portal-ops"])
    return provider


def follow(client, response, limit: int = 10):
    """Follow a sign-in's redirects: the portal's with the test client, the provider's over
    HTTP (it redirects back to the portal, http://testserver/...)."""
    for _ in range(limit):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = response["Location"]
        parts = urlsplit(location)
        if parts.netloc and parts.netloc != "testserver":
            hop = requests.get(location, allow_redirects=False, timeout=5)
            if hop.status_code not in (301, 302, 303):
                return hop
            location = hop.headers["Location"]
            parts = urlsplit(location)
            assert parts.netloc in ("", "testserver"), location
        response = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
    raise AssertionError("too many redirects")


def sign_in(client, next_url: str = ""):
    """A whole sign-in, from the login page's link to the page it ends on."""
    start = "/accounts/login/oidc/" + (f"?next={next_url}" if next_url else "")
    return follow(client, client.get(start))

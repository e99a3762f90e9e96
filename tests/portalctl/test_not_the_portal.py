"""portalctl at an address where something other than the portal's API answers (issue 28,
item 4): a web site, a sign-in page or the portal's address with a path too answers HTML,
which portalctl printed as a raw snippet ("HTTP 200: <!doctype html>"), or read a 404 page as
"no service named ...". It says instead that this is not the portal's API, where, and what
answered -- and a gateway's 5xx page in front of a portal that is restarting is waited out
by `wait`, as no answer is.

The other side is a real HTTP server on 127.0.0.1 (pytest-httpserver) answering HTML.
"""

import json
import re

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from portalctl.cli import cli
from tests.portalctl.conftest import write

PAGE = "<!doctype html>\n<html><head><title>Welcome</title></head><body>Hello</body></html>\n"

COMMANDS = [
    ["apply", "{manifest}"],
    ["config", "get", "checkout"],
    ["config", "get", "checkout", "--format", "env"],
    ["config", "validate", "checkout", "{values}"],
    ["config", "set", "checkout", "{values}", "--base-version", "1"],
    ["config", "diff", "checkout", "1", "2"],
    ["config", "import", "checkout", "{dotenv}"],
    ["deploy", "checkout", "--version", "2"],
    ["deploy", "checkout", "--version", "2", "--wait", "--timeout", "1"],
    ["wait", "checkout", "--timeout", "1"],
    ["status"],
    ["status", "checkout"],
]


@pytest.fixture
def site(http_servers):
    """A web server answering every request with an HTML page (its status set per test)."""
    with http_servers.borrow() as server:
        yield server


def answer_html(server: HTTPServer, status: int, headers: dict | None = None) -> str:
    server.expect_request(re.compile("^/")).respond_with_data(
        PAGE, status=status, content_type="text/html; charset=utf-8", headers=headers
    )
    return server.url_for("").rstrip("/")


def run(url: str, command: list[str], tmp_path, *extra: str, token: str = "svp_anything"):  # noqa: S107 (no such token)
    files = {
        "{manifest}": write(tmp_path / "m.yaml", "services: [{name: x, team: y}]"),
        "{values}": write(tmp_path / "v.yaml", "currency: EUR\ntimeout: 30"),
        "{dotenv}": write(tmp_path / "a.env", "CURRENCY=EUR\n"),
    }
    args = [files.get(a, a) for a in command] + list(extra)
    environ = {"PORTAL_URL": url, "PORTAL_TOKEN": token}
    return CliRunner().invoke(cli, args, env=environ)


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_html_answer_is_not_the_portals_api_and_says_so(site, tmp_path, command, status):
    url = answer_html(site, status)
    result = run(url, command, tmp_path)
    assert result.exit_code == 1, result.output
    said = f"portalctl: this is not the portal's API at {url} (HTTP {status}, text/html)"
    assert said in result.stderr
    assert "<" not in result.output  # no HTML, not even a snippet
    assert "no service named" not in result.output  # a 404 page is not the portal's 404
    as_json = run(url, command, tmp_path, "--json")
    assert as_json.exit_code == 1, as_json.output
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "not_the_portal"
    assert error["message"].startswith(said.removeprefix("portalctl: "))


def test_a_redirect_it_does_not_follow_is_named(site, tmp_path):
    """A POST answered by a redirect (http:// to https://, say) is not followed: the answer
    names where it leads."""
    url = answer_html(site, 301, headers={"Location": "https://portal.example/api/registry/apply"})
    result = run(url, ["apply", "{manifest}"], tmp_path)
    assert result.exit_code == 1, result.output
    assert f"this is not the portal's API at {url} (HTTP 301, text/html)" in result.stderr
    assert "it redirects to https://portal.example/api/registry/apply" in result.stderr


def test_a_gateways_page_is_waited_out_by_wait_and_named(site, tmp_path):
    """A 502 page from a proxy in front of a portal that is restarting: `wait` keeps polling
    until its timeout (as when nothing answers), then names what answered; other commands
    stop at once, as for a portal that cannot be reached."""
    url = answer_html(site, 502)
    waiting = ["wait", "checkout", "--timeout", "1", "--interval", "0.2"]
    result = run(url, waiting, tmp_path, token="")  # no token: nothing checked first
    assert result.exit_code == 1, result.output
    assert "gave up after 1s; not usable:" in result.stderr
    assert f"this is not the portal's API at {url} (HTTP 502, text/html)" in result.stderr
    polls = [r for r, _ in site.log if r.path == "/health/service/checkout"]
    assert len(polls) > 1
    status = run(url, ["status"], tmp_path, "--json")
    assert status.exit_code == 1
    assert json.loads(status.stdout)["error"]["code"] == "unreachable"

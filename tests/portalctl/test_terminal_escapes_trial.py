"""Breaking trial of "free text and terminals" (issue 28, item 8): a bidirectional override
in a string from the portal, a C1 CSI in a display name, escapes split to survive a strip,
and a manifest with escapes applied twice -- unchanged the second time."""

import pytest
from click.testing import CliRunner

from portalctl.cli import cli
from services.models import Service
from tests.portalctl.conftest import write

# U+202E (right-to-left override) then U+2066 (left-to-right isolate): a terminal laying out
# bidirectional text shows "\u202egnp.exe" as "exe.png" -- a check named as another.
SPOOFED = "\u202egnp.exe\u2066x\u2069"
HEALTH = {
    "status": "healthy",
    "reason": SPOOFED,
    "results_since": "2026-01-01T00:00:00Z",
    "checks": [{"name": SPOOFED, "kind": "http", "status": "healthy", "errors": [SPOOFED]}],
    "dependencies": [],
}


def test_bidirectional_overrides_from_the_portal_are_written_out(http_servers):
    with http_servers.borrow() as server:
        server.expect_request("/health/service/checkout").respond_with_json(HEALTH)
        teams = {"items": [], "count": 0, "limit": 100, "offset": 0}
        server.expect_request("/api/teams").respond_with_json(teams)  # the token's check
        url = server.url_for("").rstrip("/")
        env = {"PORTAL_URL": url, "PORTAL_TOKEN": "svp_x"}
        result = CliRunner().invoke(cli, ["status", "checkout"], env=env)
        as_json = CliRunner().invoke(cli, ["status", "checkout", "--json"], env=env)
    assert result.exit_code == 0, result.output
    for char in "\u202e\u2066\u2069":
        assert char not in result.stdout + result.stderr
        assert char not in as_json.stdout
    assert r"\u202egnp.exe\u2066x\u2069" in result.stdout
    assert r"\u202egnp.exe" in as_json.stdout  # JSON's own escape: the value is intact


HOSTILE_MANIFEST = """
teams: [{name: shop, display_name: "\\x1b\\x1b[31m[31mShop\\x9b2J", contact: "a\\x9b\\x1b[0mb"}]
services:
  - name: checkout
    team: shop
    display_name: "\\x1b]0;owned\\x07Check\\x1b[0mout"
    description: "line one\\r\\nline\\x1b[2J two"
"""


@pytest.mark.django_db(transaction=True)
def test_a_manifest_with_escapes_is_stored_plain_and_unchanged_when_applied_again(
    portalctl, tmp_path
):
    path = write(tmp_path / "m.yaml", HOSTILE_MANIFEST)
    first = portalctl("apply", path)
    assert first.exit_code == 0, first.output
    service = Service.objects.select_related("team").get(name="checkout")
    assert (service.display_name, service.description) == ("Checkout", "line one\nline two")
    # An escape split so that taking one out would join another: nothing of either is left.
    assert service.team.display_name == "[31mShop" and service.team.contact == "ab"
    again = portalctl("apply", path)
    assert again.exit_code == 0, again.output
    assert "updated: -\nunchanged: checkout\nteams: unchanged shop" in again.stdout


# --- What portalctl takes for the portal's answer (issue 28, item 4) ---------------------

NOT_THE_PORTALS_JSON = [
    (200, "<!doctype html><p>gateway</p>"),  # labelled JSON, not JSON: a traceback before
    (404, '{"message": "Not Found"}'),  # another JSON API: "no service named" before
    (403, "[]"),
]


@pytest.mark.parametrize(("status", "body"), NOT_THE_PORTALS_JSON)
@pytest.mark.parametrize(
    "command",
    [
        ["status", "checkout"],
        ["config", "get", "checkout"],
        ["deploy", "checkout", "--version", "1"],
    ],
    ids=" ".join,
)
def test_an_answer_labelled_json_that_is_not_the_portals_is_said_to_be_so(
    http_servers, status, body, command
):
    from werkzeug import Response

    with http_servers.borrow() as server:
        answer = Response(body, status=status, content_type="application/json")
        for path in ["/api/teams", "/health/service/checkout", "/api/services/checkout/config"]:
            server.expect_request(path).respond_with_response(answer)
        server.expect_request("/api/services/checkout/deployments").respond_with_response(answer)
        url = server.url_for("").rstrip("/")
        env = {"PORTAL_URL": url, "PORTAL_TOKEN": "svp_x"}
        result = CliRunner().invoke(cli, command, env=env)
        as_json = CliRunner().invoke(cli, [*command, "--json"], env=env)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"this is not the portal's API at {url} (HTTP {status}, application/json" in (
        result.stderr
    )
    assert "no service named" not in result.stderr
    assert '"code": "not_the_portal"' in as_json.stdout + as_json.stderr

"""Terminal escapes in what the portal sends are written out, never obeyed (issue 28, item 8).

A description, a check's error, a message quoting what was sent: text from the portal that
portalctl printed as it came, so `\\x1b[31m` recoloured the job log and `\\x1b[2J` cleared the
operator's terminal. Every string portalctl prints from the server now has its control
characters written out (`\\x1b`), JSON escapes them (`\\u001b`), and the dotenv file of
`config get --format env` is written exactly as sent when it goes to a file.

The portal's side here is a real HTTP server on 127.0.0.1 (pytest-httpserver) that answers
each command with the portal's shapes, every string in them hostile: an old portal's stored
rows, or a probed service's error text, could carry any of it. The input side -- the portal
taking escapes out of names and descriptions as they arrive -- is
tests/services/test_api.py::test_free_text_loses_terminal_escapes_on_the_way_in.
"""

import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from portalctl.cli import cli
from tests.portalctl.conftest import write

# Colour, an operating-system command (retitle) ended by BEL, a C1 CSI erasing the screen,
# a carriage return that would overwrite the line, a line feed that would forge one.
HOSTILE = "\x1b[31mred\x1b[0m \x1b]0;owned\x07\x9b2J\rover\nportalctl: forged"
# What the terminal may receive: printable text and line feeds, nothing else.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")

PUBLISH = {
    "service": HOSTILE,
    "version": HOSTILE,
    "changed": True,
    "stored": True,
    "valid": True,
    "warnings": {HOSTILE: HOSTILE},
    "validation_level": "strict",
    "hash": HOSTILE,
}
HEALTH = {
    "status": HOSTILE,
    "reason": HOSTILE,
    "results_since": "2026-01-01T00:00:00Z",
    "checks": [
        {"name": HOSTILE, "kind": HOSTILE, "status": HOSTILE, "errors": [HOSTILE, HOSTILE]},
    ],
    "dependencies": [{"service": HOSTILE, "kind": "hard", "status": HOSTILE}],
}
ANSWERS = {
    ("POST", "/api/registry/apply"): {
        "dry_run": False,
        "created": [HOSTILE],
        "updated": [HOSTILE],
        "unchanged": [],
        "teams": {"created": [HOSTILE]},
        "config": {
            HOSTILE: {"schema_version": 1, "schema_changed": True, "version": 2, "changed": True}
        },
    },
    ("POST", "/api/services/checkout/config/validate"): PUBLISH,
    ("POST", "/api/services/checkout/config"): PUBLISH,
    ("GET", "/api/services/checkout/config/diff"): {
        "from_version": 1,
        "to_version": 2,
        "added": [{"path": HOSTILE, "value": HOSTILE}],
        "removed": [{"path": HOSTILE, "value": HOSTILE}],
        "changed": [{"path": HOSTILE, "old": HOSTILE, "new": HOSTILE}],
    },
    ("POST", "/api/services/checkout/config/import"): {
        **PUBLISH,
        "dry_run": False,
        "keys": {HOSTILE: HOSTILE},
        "types": {HOSTILE: HOSTILE},
        "ignored": [HOSTILE],
        "schema_version": HOSTILE,
        "proposed_schema": {"type": "object"},
        "dialect": HOSTILE,
        "parse_warnings": [{"key": HOSTILE, "line": 1, "reason": HOSTILE}],
    },
    ("POST", "/api/services/checkout/deployments"): {
        "config_version": HOSTILE,
        "version": HOSTILE,
        "status": HOSTILE,
        "created_at": "2026-01-01T00:00:00Z",
    },
    ("GET", "/api/teams"): {"items": [], "count": 0, "limit": 100, "offset": 0},
    ("GET", "/health/services"): {
        "status": HOSTILE,
        "services": [
            {
                "name": HOSTILE,
                "status": HOSTILE,
                "critical": True,
                "since": HOSTILE,
                "response_ms": 3,
                "reason": HOSTILE,
            }
        ],
    },
}
REFUSAL = {
    "error": {
        "code": HOSTILE,
        "message": HOSTILE,
        "fields": {HOSTILE: HOSTILE},
        "request_id": HOSTILE,
        "current_version": HOSTILE,
    }
}
DOTENV = f"CURRENCY='{HOSTILE}'\n"

COMMANDS = [
    ["apply", "{manifest}"],
    ["config", "validate", "checkout", "{values}"],
    ["config", "set", "checkout", "{values}", "--base-version", "1"],
    ["config", "diff", "checkout", "1", "2"],
    ["config", "import", "checkout", "{dotenv}"],
    ["config", "get", "refused"],  # the portal's refusal: message, fields, request id
    ["deploy", "checkout", "--version", "2"],
    ["deploy", "checkout", "--version", "2", "--wait", "--timeout", "0.5"],
    ["wait", "checkout", "--timeout", "0.5", "--interval", "0.2"],
    ["status"],
    ["status", "checkout"],
]


@pytest.fixture
def hostile_portal(http_servers):
    with http_servers.borrow() as server:
        yield _answer_hostile_strings(server)


def _answer_hostile_strings(server: HTTPServer) -> str:
    for (method, path), body in ANSWERS.items():
        server.expect_request(path, method=method).respond_with_json(body)
    server.expect_request("/health/service/checkout").respond_with_json(HEALTH, status=503)
    server.expect_request("/api/services/refused/config").respond_with_json(REFUSAL, status=409)
    server.expect_request("/api/services/checkout/config", method="GET").respond_with_data(
        DOTENV, content_type="text/plain; charset=utf-8"
    )
    return server.url_for("").rstrip("/")


def run(url: str, command: list[str], tmp_path, *extra: str):
    files = {
        "{manifest}": write(tmp_path / "m.yaml", "services: [{name: x, team: y}]"),
        "{values}": write(tmp_path / "v.yaml", "currency: EUR"),
        "{dotenv}": write(tmp_path / "a.env", "CURRENCY=EUR\n"),
    }
    args = [files.get(a, a) for a in command] + list(extra)
    return CliRunner().invoke(cli, args, env={"PORTAL_URL": url, "PORTAL_TOKEN": "svp_x"})


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_string_from_the_portal_is_printed_with_its_escapes_written_out(
    hostile_portal, tmp_path, command
):
    result = run(hostile_portal, command, tmp_path)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    printed = result.stdout + result.stderr
    assert not CONTROL.findall(printed), printed
    assert r"\x1b[31mred\x1b[0m \x1b]0;owned\x07\x9b2J\rover\nportalctl: forged" in printed
    assert "\nportalctl: forged" not in printed  # no line forged inside a value
    as_json = run(hostile_portal, command, tmp_path, "--json")
    assert not CONTROL.findall(as_json.stdout + as_json.stderr)
    assert "\\u001b[31m" in as_json.stdout  # JSON's own escape: the value is intact


def test_the_env_format_goes_to_a_file_exactly_as_sent(hostile_portal, tmp_path):
    """A pipeline redirects it to a file for a shell to source: not a terminal, so the
    portal's bytes, unchanged."""
    result = run(hostile_portal, ["config", "get", "checkout", "--format", "env"], tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout == DOTENV


def on_a_terminal(url: str, *args: str) -> str:
    """The installed console script with a pseudo-terminal for its output: what an operator
    sees, bytes as the terminal receives them."""
    script = shutil.which("portalctl", path=str(Path(sys.executable).parent))
    assert script, "no portalctl console script: run pip install -e '.[dev]'"
    leader, follower = pty.openpty()
    environ = {**os.environ, "PORTAL_URL": url, "PORTAL_TOKEN": "svp_x"}
    process = subprocess.Popen(
        [script, *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=environ
    )
    os.close(follower)
    received = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65_536)
            except OSError:  # the other end closed: the process is done
                break
            if not chunk:
                break
            received += chunk
    finally:
        process.wait(timeout=30)
        os.close(leader)
    return received.decode("utf-8", "replace")


def test_on_a_terminal_the_env_format_and_the_live_line_write_escapes_out(hostile_portal):
    """On a terminal the dotenv text is written out like everything else; `wait`'s live line
    still rewrites itself with portalctl's own control (carriage return, erase line), the
    only control characters that reach the terminal besides line ends."""
    env = on_a_terminal(hostile_portal, "config", "get", "checkout", "--format", "env")
    assert r"CURRENCY='\x1b[31mred\x1b[0m" in env
    assert "\x1b" not in env and "\x9b" not in env
    waited = on_a_terminal(
        hostile_portal, "wait", "checkout", "--timeout", "1", "--interval", "0.2"
    )
    assert "\r\x1b[K" in waited  # the live line, portalctl's own
    own = waited.replace("\r\x1b[K", "").replace("\r\n", "\n")  # the terminal's line ends
    assert not CONTROL.findall(own), own
    assert r"\x1b[31mred" in own

"""What `portalctl --help` and docs/pipelines.md promise a pipeline, each held against a live
portal (or, for "could not be reached", against a port nothing listens on): the exit codes --
0 done, 1 the portal refused or could not be reached, 2 bad usage -- the refusal's error object
under --json, the defaults the help and the table state, a dotenv file any shell sources back
to the values stored, secrets named by `config diff` and never shown, `--dependencies`
following hard dependencies and theirs, and YAML read as data only."""

import json
import os
import string
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from django.conf import settings
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from healthchecks.status import Status
from portalctl.cli import cli
from services.models import ConfigVersion, Deployment, Service
from tests.conftest import database_url
from tests.factories import ServiceFactory, make_check
from tests.healthchecks.servers import closed_port
from tests.healthchecks.test_health_views import record
from tests.portalctl.conftest import write

pytestmark = pytest.mark.django_db(transaction=True)

PIPELINES = settings.BASE_DIR / "docs" / "pipelines.md"

SERVICE = """
teams: [{name: shop}]
services:
  - name: checkout
    team: shop
    config:
      schema:
        required_fields: [currency, timeout]
        optional_fields: [api_key]
        field_types: {currency: str, timeout: int, api_key: str}
        secret_fields: [api_key]
        validation_rules: {timeout: {min: 1, max: 300}}
      values: {currency: EUR, timeout: 30}
"""


@pytest.fixture
def checkout(portalctl, tmp_path):
    """checkout with a schema (api_key a secret) and configuration version 1."""
    result = portalctl("apply", write(tmp_path / "checkout.yaml", SERVICE))
    assert result.exit_code == 0, result.output


def nowhere(*args, input=None, token="svp_anything"):  # noqa: S107 (no such token)
    """A command against an address where nothing listens."""
    environ = {"PORTAL_URL": f"http://127.0.0.1:{closed_port()}", "PORTAL_TOKEN": token}
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=environ)


# --- exit 1: could not be reached -----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
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
    ],
)
def test_a_portal_that_cannot_be_reached_is_exit_1_saying_where(tmp_path, command):
    files = {
        "{manifest}": write(tmp_path / "m.yaml", "services: [{name: x, team: y}]"),
        "{values}": write(tmp_path / "v.yaml", "currency: EUR\ntimeout: 30"),
        "{dotenv}": write(tmp_path / "a.env", "CURRENCY=EUR\n"),
    }
    args = [files.get(a, a) for a in command]
    result = nowhere(*args)
    assert result.exit_code == 1, result.output
    assert "cannot reach the portal at http://127.0.0.1:" in result.stderr
    as_json = nowhere(*args, "--json")
    assert as_json.exit_code == 1, as_json.output
    assert json.loads(as_json.stdout)["error"]["code"] == "unreachable"


def test_a_wait_without_a_token_keeps_trying_an_unreachable_portal_until_its_timeout():
    """A portal restarting mid-deploy is waited for, not a failure at once."""
    result = nowhere("wait", "checkout", "--timeout", "1", "--interval", "0.2", token="")
    assert result.exit_code == 1, result.output
    assert "gave up after 1s; not usable:" in result.stderr
    assert "checkout: unreachable (cannot reach the portal" in result.stderr


# --- exit 2: bad usage, and nothing sent ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["apply", "--no-such-option", "{manifest}"], "No such option"),
        (["config", "get"], "Missing argument"),
        (["config", "get", "checkout", "--format", "yaml"], "'yaml' is not one of"),
        (["config", "get", "checkout", "--version", "-1"], "x>=0"),
        (["config", "set", "checkout", "{list}", "--base-version", "1"], "does not hold a mapping"),
        (["config", "validate", "checkout", "{broken}"], "not valid YAML or JSON"),
        (["config", "import", "checkout", "/nonexistent.env"], "cannot read"),
        (["deploy", "checkout", "--version", "2", "--config-version", "0"], "x>=1"),
        (["deploy", "checkout", "--version", "2", "--status", "done"], "'done' is not one of"),
        (["wait", "checkout", "--interval", "0.05"], "x>=0.1"),
        (["wait", "checkout", "--timeout", "-1"], "x>=0"),
        (["status", "--url", "ftp://portal.example"], "an http:// or https:// address"),
    ],
)
def test_bad_usage_is_exit_2_before_anything_is_sent(tmp_path, args, says):
    """Run against an address nothing listens on: had anything been sent, it would be 1."""
    files = {
        "{manifest}": write(tmp_path / "m.yaml", "services: []"),
        "{list}": write(tmp_path / "list.yaml", "- a\n- b\n"),
        "{broken}": write(tmp_path / "broken.json", '{"currency": '),
    }
    result = nowhere(*[files.get(a, a) for a in args])
    assert result.exit_code == 2, result.output
    assert says in result.stderr


def test_version_shows_the_version_and_exits_0():
    result = CliRunner().invoke(cli, ["--version"])
    assert (result.exit_code, result.stdout) == (0, "portalctl, version 0.1.0\n")


# --- the defaults the help and docs/pipelines.md state ----------------------------------------


def option(path: list[str], name: str) -> click.Option:
    command = cli
    for part in path:
        command = command.commands[part]
    return next(p for p in command.params if p.name == name)


def test_the_defaults_the_docs_state_are_the_commands_own():
    table = PIPELINES.read_text()
    assert "`portalctl wait SERVICE... [--timeout 300] [--interval 2]" in table
    assert "[--wait [--timeout 300] [--dependencies]]" in table
    assert "(`succeeded` unless `--status` says `in_progress`, `failed` or `rolled_back`)" in table
    assert option(["wait"], "timeout").default == 300
    assert option(["wait"], "interval").default == 2
    assert option(["deploy"], "timeout").default == 300
    assert option(["deploy"], "status").default == "succeeded"
    assert list(option(["deploy"], "status").type.choices) == [
        "in_progress",
        "succeeded",
        "failed",
        "rolled_back",
    ]
    assert option(["config", "get"], "fmt").default == "json"


# --- exit 1: the portal refused -------------------------------------------------------------


def test_an_unknown_service_or_version_is_exit_1(portalctl, checkout):
    for args, says in [
        (["config", "get", "nosuch"], "no service named 'nosuch'"),
        (["config", "get", "checkout", "--format", "env", "--version", "9"], "version 9"),
        (["status", "nosuch"], "no service named 'nosuch'"),
    ]:
        result = portalctl(*args)
        assert result.exit_code == 1, (args, result.output)
        assert says in result.stderr, (args, result.stderr)


def test_set_of_values_that_do_not_pass_is_exit_1_naming_the_field_and_stores_nothing(
    portalctl, checkout, tmp_path
):
    path = write(tmp_path / "bad.yaml", "currency: EUR\ntimeout: 301")
    result = portalctl("config", "set", "checkout", path, "--base-version", 1)
    assert result.exit_code == 1, result.output
    assert "values.timeout" in result.stderr and "request id: " in result.stderr
    assert ConfigVersion.objects.count() == 1


def test_a_refusal_under_json_is_the_portals_error_object(portalctl, checkout, tmp_path):
    path = write(tmp_path / "v.yaml", "currency: USD\ntimeout: 30")
    result = portalctl("config", "set", "checkout", path, "--base-version", 0, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert {"code", "message", "fields", "request_id", "status"} <= set(error)
    assert error["fields"] == {}  # the portal names none for a stale base: still there
    assert (error["code"], error["status"], error["current_version"]) == ("stale_version", 409, 1)
    assert error["request_id"] and "version 0 is no longer current" in error["message"]


def test_import_of_a_line_it_cannot_read_is_exit_1_naming_the_line(portalctl, checkout):
    result = portalctl(
        "config", "import", "checkout", "-", input="CURRENCY=EUR\nnot a pair\nTIMEOUT=9\n"
    )
    assert result.exit_code == 1, result.output
    assert "dotenv:2: not a KEY=value line" in result.stderr
    assert ConfigVersion.objects.count() == 1


def test_import_on_a_stale_base_version_is_exit_1_and_stores_nothing(portalctl, checkout):
    result = portalctl(
        "config",
        "import",
        "checkout",
        "-",
        "--base-version",
        0,
        input="CURRENCY=GBP\nTIMEOUT=9\n",
    )
    assert result.exit_code == 1, result.output
    assert "stale_version" in result.stderr and "current version: 1" in result.stderr
    assert ConfigVersion.objects.count() == 1


# --- config diff: secrets named, never shown ------------------------------------------------

SECRET_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " äß€", min_size=1
).map(lambda s: f"sk-{s}")


@hsettings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(old=SECRET_TEXT, new=SECRET_TEXT)
def test_diff_names_a_changed_secret_and_never_shows_it(portalctl, checkout, tmp_path, old, new):
    assume(old != new)
    base = Service.objects.get(name="checkout").config_versions.count()
    for offset, (secret, currency) in enumerate([(old, "EUR"), (new, "USD")]):
        document = {"currency": currency, "timeout": 30, "api_key": secret}
        path = write(tmp_path / "v.json", json.dumps(document))
        stored = portalctl(
            "config", "set", "checkout", path, "--base-version", base + offset, "--json"
        )
        assert stored.exit_code == 0, stored.output
        assert secret not in stored.output
    first, second = base + 1, base + 2
    for extra in ([], ["--json"]):
        shown = portalctl("config", "diff", "checkout", first, second, *extra)
        assert shown.exit_code == 0, shown.output
        assert "api_key" in shown.stdout  # named
        assert "currency" in shown.stdout
        for secret in (old, new):
            assert secret not in shown.output and json.dumps(secret)[1:-1] not in shown.output


# --- config get --format env: a dotenv file any shell sources back --------------------------

KEY = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
LEAF = st.one_of(
    TEXT,
    st.integers(-(10**12), 10**12),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(TEXT, st.integers(0, 9)), max_size=3),
)
DOCUMENT = st.dictionaries(KEY, st.one_of(LEAF, st.dictionaries(KEY, LEAF, max_size=3)), max_size=5)


def as_variables(document: dict, prefix: str) -> dict[str, str]:
    """What README "Configuration" says the env format holds: one variable per leaf, keys
    upper-cased and joined with ``_``; text as it is, numbers in decimal, booleans
    ``true``/``false``, null empty, arrays and empty objects as JSON."""

    def text(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, int):
            return str(value)
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    variables = {}
    for key, value in document.items():
        if isinstance(value, dict) and value:
            for inner, leaf in value.items():
                variables[f"{prefix}{key}_{inner}".upper()] = text(leaf)
        else:
            variables[f"{prefix}{key}".upper()] = text(value)
    return variables


def sourced(env_file, names: list[str]) -> tuple[dict[str, str], set[str]]:
    """The variables named, as a POSIX shell sees them after ``set -a; . file`` (on stdout,
    each ended by a NUL), and every variable the file set (on stderr, a name a line)."""
    script = (
        'before=$(compgen -e); set -a; . "$1" || exit 9; set +a; '
        'for name in "${@:2}"; do printf "%s\\0" "${!name}"; done; '
        'comm -13 <(echo "$before" | sort) <(compgen -e | sort) >&2'
    )
    shell = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script, "sh", str(env_file), *names],
        capture_output=True,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"},
        check=True,
    )
    read = [v.decode() for v in shell.stdout.split(b"\x00")[:-1]]
    return dict(zip(names, read, strict=True)), set(shell.stderr.decode().split())


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=DOCUMENT)
def test_the_env_format_is_a_file_any_shell_sources_back_to_the_values(
    portalctl, tmp_path, document
):
    if not Service.objects.filter(name="env").exists():
        applied = portalctl(
            "apply",
            write(
                tmp_path / "env.yaml", "teams: [{name: shop}]\nservices: [{name: env, team: shop}]"
            ),
        )
        assert applied.exit_code == 0, applied.output
    current = json.loads(portalctl("config", "get", "env").stdout)["version"]
    stored = portalctl(
        "config", "set", "env", write(tmp_path / "v.json", json.dumps(document)),
        "--base-version", current,
    )  # fmt: skip
    assert stored.exit_code == 0, stored.output
    result = portalctl("config", "get", "env", "--format", "env", "--prefix", "APP_")
    assert result.exit_code == 0, result.output
    env_file = tmp_path / "app.env"
    env_file.write_bytes(result.stdout_bytes)
    expected = as_variables(document, "APP_")
    seen, exported = sourced(env_file, sorted(expected))
    assert seen == expected
    assert exported == set(expected)


def test_a_configuration_with_nothing_in_it_is_an_empty_file_a_shell_sources(portalctl, tmp_path):
    """A service with neither schema nor values (version 0, the defaults: {}) -- was
    "='{}'", a line a shell runs as a command and fails on."""
    applied = portalctl(
        "apply",
        write(
            tmp_path / "bare.yaml", "teams: [{name: shop}]\nservices: [{name: bare, team: shop}]"
        ),
    )
    assert applied.exit_code == 0, applied.output
    result = portalctl("config", "get", "bare", "--format", "env")
    assert (result.exit_code, result.stdout) == (0, "")
    env_file = tmp_path / "bare.env"
    env_file.write_bytes(result.stdout_bytes)
    assert sourced(env_file, []) == ({}, set())


# --- wait --dependencies: hard dependencies, and theirs -------------------------------------


def test_wait_with_dependencies_follows_hard_dependencies_two_hops_away(
    portalctl, tmp_path, httpserver, prober
):
    """web needs api needs db (hard; cache soft). With db failing, api and web still read as
    usable (degraded by a dependency), so only a wait that reaches db finds it out."""
    for name in ("web", "api", "cache"):
        httpserver.expect_request(f"/{name}").respond_with_data("ok")
    httpserver.expect_request("/db").respond_with_data("down", status=500)
    needs = {"web": ["api", {"service": "cache", "kind": "soft"}], "api": ["db"]}
    services = [
        {
            "name": name,
            "team": "shop",
            "dependencies": needs.get(name, []),
            "checks": [
                {
                    "name": "http",
                    "kind": "http",
                    "interval": 10,
                    "target": httpserver.url_for(f"/{name}"),
                }
            ],
        }
        for name in ("web", "api", "db", "cache")
    ]
    manifest = json.dumps({"teams": [{"name": "shop"}], "services": services})
    assert portalctl("apply", write(tmp_path / "m.json", manifest)).exit_code == 0
    prober()
    alone = portalctl("wait", "web", "--timeout", 30, "--interval", 0.2)
    assert alone.exit_code == 0, alone.output  # its own checks pass; api is only degraded
    assert "usable: web" in alone.stdout
    both = portalctl("wait", "web", "--dependencies", "--timeout", 3, "--interval", 0.2)
    assert both.exit_code == 1, both.output
    assert "  db: unhealthy" in both.stderr and "check http (unhealthy): HTTP 500" in both.stderr
    assert "cache" not in both.output  # a soft dependency is not waited for


# --- YAML is data: tags that would run code are refused -------------------------------------

PAYLOAD = (
    "teams: [{{name: shop}}]\n"
    "services:\n"
    '  - name: !!python/object/apply:os.system ["touch {marker}"]\n'
    "    team: shop\n"
)


def test_a_yaml_tag_that_would_run_code_is_refused_and_runs_nothing(portalctl, tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path / "evil.yaml", PAYLOAD.format(marker=marker))
    result = portalctl("apply", path)
    assert result.exit_code == 2, result.output
    assert "not valid YAML or JSON" in result.stderr
    command = subprocess.run(
        [sys.executable, "manage.py", "apply_manifest", path],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "PORTAL_ENV_FILE": "",
            "DEBUG": "true",
            "DATABASE_URL": database_url(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode != 0, command.stdout
    assert not marker.exists()
    assert not Service.objects.exists()


# --- wait --any-result: older results count too (not a deploy gate) ------------------------


def test_any_result_counts_a_result_from_before_the_wait_and_a_plain_wait_does_not(
    portalctl, tmp_path
):
    """One healthy result, recorded before either wait began, and nothing probing since."""
    applied = portalctl(
        "apply",
        write(tmp_path / "w.yaml", "teams: [{name: shop}]\nservices: [{name: web, team: shop}]"),
    )
    assert applied.exit_code == 0, applied.output
    record(make_check(Service.objects.get(name="web"), name="http"), Status.HEALTHY)
    older = portalctl("wait", "web", "--any-result", "--timeout", 5, "--interval", 0.2)
    assert older.exit_code == 0, older.output
    assert "usable: web" in older.stdout
    gated = portalctl("wait", "web", "--timeout", 1, "--interval", 0.2)
    assert gated.exit_code == 1, gated.output
    assert "check http (unknown): no result since" in gated.stderr


def test_deploy_sends_the_service_name_as_one_path_segment(portalctl):
    """Breaking trial (issue 21): `deploy 'hb/deployments?'` reported a deployment of hb."""
    ServiceFactory(name="hb")
    result = portalctl("deploy", "hb/deployments?", "--version", "z", "--status", "failed")
    assert result.exit_code == 1
    assert not Deployment.objects.exists()

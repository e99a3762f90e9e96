"""The ``portalctl`` commands.

Exit status: 0 success; 1 the portal refused (its message, fields and request id are
printed), could not be reached, or a wait gave up; 2 bad usage (click's own, and a file that
cannot be read or parsed).
"""

import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import click
import yaml

from portalctl import output
from portalctl.client import NotThePortal, Portal, Refused, Unreachable, refused
from portalctl.output import echo, emit_json, shown, table
from portalctl.verifying import VerdictWaiter, verdict_lines
from portalctl.waiting import NoSuchService, Waiter

HTTP_TIMEOUT = 30.0


@dataclass
class Session:
    portal: Portal
    as_json: bool

    def need_token(self) -> None:
        if not self.portal.token:
            raise click.UsageError("no token: set PORTAL_TOKEN or pass --token")


def command(group, name: str | None = None, **settings):
    """A subcommand with the common options (--url, --token, --json) and the one way errors
    end it: the portal's refusal or no answer -> 1."""

    def wrap(fn):
        @group.command(name, **settings)
        @click.option("--url", envvar="PORTAL_URL", help="The portal's address [PORTAL_URL].")
        @click.option("--token", envvar="PORTAL_TOKEN", help="An API token [PORTAL_TOKEN].")
        @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
        @functools.wraps(fn)
        def run(url, token, as_json, **kwargs):
            if not url:
                raise click.UsageError("no portal address: set PORTAL_URL or pass --url")
            if not url.startswith(("http://", "https://")):
                raise click.BadParameter("an http:// or https:// address", param_hint="--url")
            session = Session(Portal(url, token or "", HTTP_TIMEOUT), as_json)
            try:
                fn(session, **kwargs)
            except Refused as exc:
                output.print_refused(exc, as_json)
                sys.exit(1)
            except (Unreachable, NotThePortal, NoSuchService) as exc:
                if as_json:
                    code = getattr(exc, "code", "unreachable")
                    emit_json({"error": {"code": code, "message": str(exc)}})
                output.fail(str(exc))
                sys.exit(1)

        return run

    return wrap


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None


def read_document(path: str) -> dict:
    """A YAML or JSON (JSON is YAML) mapping from a file, or ``-`` for stdin."""
    try:
        document = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path} is not valid YAML or JSON: {exc}") from None
    except RecursionError:  # the YAML reader recurses per level: ~250 nested lists fill it
        raise click.BadParameter(f"{path} is nested too deeply to read") from None
    if not isinstance(document, dict):
        raise click.BadParameter(f"{path} does not hold a mapping")
    return document


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="portalctl")
def cli():
    """The service-operations portal from a shell or a pipeline.

    Set PORTAL_URL and PORTAL_TOKEN (or pass --url and --token)."""


# --- apply ----------------------------------------------------------------------------------


def merge_manifests(paths: list[str]) -> dict:
    """Several files as one manifest (one transaction: all of them or none)."""
    merged: dict = {"teams": [], "services": []}
    for path in paths:
        document = read_document(path)
        unknown = set(document) - set(merged)
        if unknown:
            raise click.BadParameter(
                f"{path}: a manifest has 'teams' and 'services', not {', '.join(sorted(unknown))}"
            )
        for key in merged:
            items = document.get(key) or []
            if not isinstance(items, list):
                raise click.BadParameter(f"{path}: '{key}' is a list")
            merged[key] += items
    return merged


@command(cli)
@click.argument("files", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Check and show the plan; store nothing.")
def apply(session: Session, files, dry_run):
    """Apply manifests (YAML or JSON; - for stdin) together, all or nothing."""
    session.need_token()
    manifest = merge_manifests(list(files))
    result = session.portal.post(
        "/api/registry/apply", manifest, dry_run="true" if dry_run else None
    )
    if session.as_json:
        return emit_json(result)
    if result.get("dry_run"):
        echo("dry run: checked, nothing stored; applying would do this:")
    for outcome in ("created", "updated", "unchanged"):
        echo(f"{outcome}: {', '.join(shown(n) for n in result[outcome]) or '-'}")
    teams = [
        f"{shown(o)} {', '.join(shown(x) for x in n)}" for o, n in result["teams"].items() if n
    ]
    if teams:
        echo(f"teams: {'; '.join(teams)}")
    for name, config in result.get("config", {}).items():
        number = config["schema_version"]
        schema = f"schema v{shown(number)}" if number else "no schema"
        schema += " (changed)" if config["schema_changed"] else ""
        version = f"version {shown(config['version'])}" if config["version"] else "no version"
        version += " (stored)" if config["changed"] else ""
        echo(f"config {shown(name)}: {schema}, {version}")


# --- config ---------------------------------------------------------------------------------


@cli.group()
def config():
    """Read, check, store, compare and import configurations."""


@command(config, "get")
@click.argument("service")
@click.option("--format", "fmt", type=click.Choice(["json", "env"]), default="json")
@click.option("--version", type=click.IntRange(min=0), help="A version (default: current).")
@click.option("--prefix", default="", help="env format: a prefix for every key.")
def config_get(session: Session, service, fmt, version, prefix):
    """Print a configuration (env: a dotenv file a shell can source)."""
    session.need_token()
    path = f"/api/services/{service}/config"
    if fmt == "env" and not session.as_json:
        params = {"format": "env", "version": version, "prefix": prefix or None}
        text = session.portal.call("GET", path, params=params, text=True).text
        if output.is_terminal():  # on a terminal, written out like everything else
            echo(text, nl=False)
        else:  # a file for a shell to source (the jobs redirect it): exactly as the portal
            click.echo(text, nl=False, color=True)  # sent it (click strips colours otherwise)
        return
    emit_json(session.portal.get(path, version=version))


def _print_publish(result: dict) -> None:
    if result.get("stored"):
        echo(f"stored version {shown(result['version'])} of {shown(result['service'])}")
    elif result.get("changed"):
        echo(f"would store a new version of {shown(result['service'])} (nothing stored)")
    else:
        service, version = shown(result["service"]), shown(result["version"])
        echo(f"unchanged: {service} is at version {version}")
    if result.get("valid") is None:
        echo("no schema check (no schema, or validation is off)")
    for path, reason in (result.get("warnings") or {}).items():
        echo(f"  warning {shown(path)}: {shown(reason)}")


@command(config, "validate")
@click.argument("service")
@click.argument("file")
def config_validate(session: Session, service, file):
    """Check a configuration file (YAML or JSON values) against the service's schema;
    nothing is stored. Exit 1 if it does not pass."""
    session.need_token()
    body = {"values": read_document(file)}
    result = session.portal.post(f"/api/services/{service}/config/validate", body)
    if session.as_json:
        emit_json(result)
    else:
        echo("valid" if result["valid"] is not False else "not valid")
        _print_publish(result)
    if result["valid"] is False:
        sys.exit(1)


@command(config, "set")
@click.argument("service")
@click.argument("file")
@click.option(
    "--base-version",
    type=click.IntRange(min=0),
    required=True,
    help="The version this edit started from (0 for the first).",
)
@click.option("--comment", default="")
def config_set(session: Session, service, file, base_version, comment):
    """Store a configuration file as the next version. If BASE_VERSION is no longer
    current, nothing is stored and it exits 1 naming the current version."""
    session.need_token()
    body = {"values": read_document(file), "base_version": base_version, "comment": comment}
    result = session.portal.post(f"/api/services/{service}/config", body)
    if session.as_json:
        return emit_json(result)
    _print_publish(result)


@command(config, "diff")
@click.argument("service")
@click.argument("from_version", type=click.IntRange(min=1))
@click.argument("to_version", type=click.IntRange(min=1))
def config_diff(session: Session, service, from_version, to_version):
    """What changed between two versions (secrets named, never shown)."""
    session.need_token()
    result = session.portal.get(
        f"/api/services/{service}/config/diff", from_version=from_version, to_version=to_version
    )
    if session.as_json:
        return emit_json(result)
    echo(f"{service}: version {shown(result['from_version'])} -> {shown(result['to_version'])}")
    for sign, key in (("+", "added"), ("-", "removed")):
        for item in result[key]:
            value = "" if item.get("secret") else f" = {shown(repr(item['value']))}"
            echo(f"{sign} {shown(item['path'])}{value}")
    for item in result["changed"]:
        old, new = shown(repr(item.get("old"))), shown(repr(item.get("new")))
        change = " (secret)" if item.get("secret") else f": {old} -> {new}"
        echo(f"~ {shown(item['path'])}{change}")
    if not any(result[k] for k in ("added", "removed", "changed")):
        echo("no differences")


@command(config, "import")
@click.argument("service")
@click.argument("file", required=False)
@click.option("--prefix", default="", help="Only keys starting with it, without it.")
@click.option(
    "--schema-from-env", is_flag=True, help="Store a schema proposed from the values' types first."
)
@click.option(
    "--base-version",
    type=click.IntRange(min=0),
    help="Refuse (exit 1) unless this is still the current version.",
)
@click.option("--comment", default="")
@click.option("--dry-run", is_flag=True, help="Check and show; store nothing.")
@click.option(
    "--dialect",
    type=click.Choice(["auto", "shell", "docker"]),
    default="auto",
    show_default=True,
    help="How FILE is read: shell (quotes, escapes, comments, export: what config get "
    "--format env writes), docker (as docker run --env-file: each value as written), auto "
    "(shell when a value starts with a quote or a line with export, else docker).",
)
def config_import(
    session: Session,
    service,
    file,
    prefix,
    schema_from_env,
    base_version,
    comment,
    dry_run,
    dialect,
):
    """Import environment variables as a configuration version: a dotenv FILE (- for
    stdin), or without one the current environment's variables that start with --prefix.
    Each key whose value another reader would take otherwise is named in a warning."""
    session.need_token()
    if file is None and not prefix:
        raise click.UsageError("give a dotenv FILE, or --prefix to import the environment")
    if file is None and dialect != "auto":
        raise click.UsageError("--dialect reads a dotenv FILE; the environment is taken as is")
    body = {
        "prefix": prefix,
        "propose_schema": schema_from_env,
        "base_version": base_version,
        "comment": comment,
        "dry_run": dry_run,
    }
    if file is None:
        body["env"] = {k: v for k, v in os.environ.items() if k.startswith(prefix)}
    else:
        body["dotenv"] = read_text(file)
        if dialect != "auto":  # left out otherwise: a portal before dialects takes the body
            body["dialect"] = dialect
    result = session.portal.post(f"/api/services/{service}/config/import", body)
    if session.as_json:
        return emit_json(result)
    if result.get("proposed_schema"):
        echo(f"schema proposed from the values: version {shown(result['schema_version'])}")
    types = result["types"]
    rows = [{"key": k, "field": f, "type": types.get(f)} for k, f in result["keys"].items()]
    echo(table(rows, ["key", "field", "type"]))
    if result.get("dialect"):
        echo(f"read as {shown(result['dialect'])}")
    for warning in result.get("parse_warnings") or []:
        key, line = shown(warning.get("key")), shown(warning.get("line"))
        echo(f"  warning {key} (line {line}): {shown(warning.get('reason'))}")
    _print_publish(result)


# --- deploy ---------------------------------------------------------------------------------


@command(cli)
@click.argument("service")
@click.option("--version", "build", required=True, help="The build deployed (a tag, a sha).")
@click.option("--config-version", type=click.IntRange(min=1))
@click.option("--config-hash")
@click.option(
    "--status",
    default="succeeded",
    type=click.Choice(["in_progress", "succeeded", "failed", "rolled_back"]),
)
@click.option("--link", default="", help="The pipeline run's URL.")
@click.option(
    "--wait",
    "then_wait",
    is_flag=True,
    help="Then wait for the portal's verdict on this release, judged on results recorded "
    "after the report: exit 0 when it passes, 1 when it fails or the timeout comes first.",
)
@click.option(
    "--bake",
    type=click.IntRange(min=0, max=86_400),
    help="Seconds the checks must hold usable after the report before the release passes "
    "(default: the service's deploy_bake_seconds; 0: one fresh usable round).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="With --wait: seconds before giving up (exit 1).",
)
@click.option(
    "--dependencies", is_flag=True, help="With --wait: then wait for its hard dependencies too."
)
def deploy(
    session: Session,
    service,
    build,
    config_version,
    config_hash,
    status,
    link,
    then_wait,
    bake,
    timeout,
    dependencies,
):
    """Report a deployment: which build, with which configuration. The portal verifies it on
    the results recorded after the report; with --wait, wait for the verdict."""
    session.need_token()
    if config_version is not None and config_hash:
        raise click.UsageError("give --config-version or --config-hash, not both")
    body = {"version": build, "status": status, "link": link}
    if config_version is not None:
        body["config_version"] = config_version
    if config_hash:
        body["config_hash"] = config_hash
    if bake is not None:
        body["bake_seconds"] = bake
    started = time.monotonic()
    result = session.portal.post(f"/api/services/{quote(service, safe='')}/deployments", body)
    if session.as_json and not then_wait:
        return emit_json(result)
    if not session.as_json:
        number = result["config_version"]
        config = f"config version {shown(number)}" if number else "no config version"
        build, state = shown(result["version"]), shown(result["status"])
        echo(f"reported {service} {build} {state} ({config})")
    if not then_wait:
        return
    if "verification" not in result:  # a portal from before verification: its deploy gate
        gate(session, [service], timeout, 2.0, dependencies, since={service: result["created_at"]})
        return
    if result["verification"] is None:
        if session.as_json:
            emit_json({"ok": False, "deployment": result})
        output.fail(f"nothing to wait for: a {shown(status)} rollout is not verified")
        sys.exit(1)
    await_verdict(session, service, result, timeout, started, dependencies)


def await_verdict(session, service, deployment, timeout, started, dependencies) -> None:
    """Wait for the verdict (exit 0 passed, 1 failed or timed out), then, with dependencies,
    for the hard dependencies to be usable within what is left of the timeout."""
    session.portal.timeout = min(HTTP_TIMEOUT, max(2.0, timeout))
    waiter = VerdictWaiter(
        session.portal,
        service,
        deployment,
        timeout,
        report=lambda line: echo(line, err=session.as_json),
    )
    done = waiter.run()
    state = done["verification"]["state"]
    if session.as_json:
        emit_json({"ok": state == "passed", "deployment": done})
    else:
        for line in verdict_lines(done):
            (echo if state == "passed" else output.fail)(line)
    if state == "pending":
        output.fail(f"gave up after {timeout:g}s: the verification is still pending")
    if state != "passed":
        sys.exit(1)
    if dependencies:
        left = max(0.0, timeout - (time.monotonic() - started))
        gate(session, [service], left, 2.0, True, fresh=False)


# --- wait -----------------------------------------------------------------------------------


@command(cli)
@click.argument("services", nargs=-1, required=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds to wait before giving up (exit 1).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option("--dependencies", is_flag=True, help="Also wait for their hard dependencies.")
@click.option(
    "--any-result",
    is_flag=True,
    help="Count results recorded before the wait began too (not a deploy gate).",
)
def wait(session: Session, services, timeout, interval, dependencies, any_result):
    """Wait until services are usable (healthy or degraded) per /health/service/NAME,
    counting only results recorded after the wait began: a deploy gate never passes a
    release on a result from before it. It says which deployment of each it waits after."""
    session.portal.check_token()
    if not any_result:
        for name in dict.fromkeys(services):
            if line := latest_deployment(session, name):
                echo(line, err=session.as_json)
    gate(session, services, timeout, interval, dependencies, fresh=not any_result)


def latest_deployment(session: Session, name: str) -> str:
    """ "NAME: after deployment V (reported T, verification S)" for the service's latest
    deployment; empty when it has none or the token may not read deployments (a wait needs
    no token: the health reads are open)."""
    if not session.portal.token:
        return ""
    try:
        found = session.portal.get(f"/api/services/{quote(name, safe='')}/deployments", limit=1)
    except (Refused, NotThePortal, Unreachable):  # the wait itself says what is wrong
        return ""
    if not isinstance(found, list) or not found:
        return ""
    latest = found[0]
    verdict = (latest.get("verification") or {}).get("state", "not verified")
    return (
        f"{shown(name)}: results after the wait began, which is after deployment "
        f"{shown(latest['version'])} (reported {shown(latest['created_at'])}, "
        f"verification {shown(verdict)})"
    )


def gate(session, services, timeout, interval, dependencies, *, fresh=True, since=None) -> None:
    """Poll until the services are usable (exit 0) or the timeout passes (exit 1, saying
    why); ``since``: service -> the moment from which its results count."""
    # One slow answer must not hold the job far past its own timeout.
    session.portal.timeout = min(HTTP_TIMEOUT, max(2.0, timeout))
    live = output.is_terminal() and not session.as_json

    def report(line: str) -> None:
        echo(line, err=session.as_json, own="\r\x1b[K" if live else "")

    def redraw(line: str) -> None:
        echo(line, nl=False, own="\r\x1b[K")

    waiter = Waiter(
        session.portal,
        list(services),
        timeout,
        interval,
        dependencies,
        report=report,
        live=redraw if live else None,
        fresh=fresh,
        since=dict(since or {}),
    )
    ok = waiter.run()
    if live:
        echo(nl=False, own="\r\x1b[K")
    if session.as_json:
        emit_json({"ok": ok, "services": {n: s.as_dict() for n, s in waiter.states.items()}})
    if ok:
        if not session.as_json:
            echo(f"usable: {', '.join(shown(n) for n in waiter.states)}")
        return
    output.fail(f"gave up after {timeout:g}s; not usable:")
    for state in waiter.not_usable():
        output.fail(f"  {state.line()}")
        for check in state.failing:
            output.fail(f"    check {shown(check)}")
    sys.exit(1)


# --- status ---------------------------------------------------------------------------------


@command(cli)
@click.argument("service", required=False)
def status(session: Session, service):
    """The estate's health, or one service's checks and dependencies, as tables."""
    session.portal.check_token()
    if service is None:
        document = session.portal.get("/health/services")
        if session.as_json:
            return emit_json(document)
        echo(f"estate: {shown(document['status'])}")
        columns = ["name", "status", "critical", "since", "response_ms", "reason"]
        echo(table(document["services"], columns))
        return
    response = session.portal.send("GET", f"/health/service/{service}")
    if response.status == 404:
        raise NoSuchService(f"no service named {service!r}")
    if response.status not in (200, 503):
        raise refused(response)
    document = response.json()
    if session.as_json:
        return emit_json(document)
    reason = f" ({shown(document['reason'])})" if document.get("reason") else ""
    echo(f"{service}: {shown(document['status'])}{reason}")
    checks = [{**c, "errors": c.get("errors") or []} for c in document["checks"]]
    if checks:
        columns = ["name", "kind", "status", "last_check_at", "response_ms", "errors"]
        echo(table(checks, columns))
    if document["dependencies"]:
        echo(table(document["dependencies"], ["service", "kind", "status"]))


def main() -> None:
    cli(prog_name="portalctl")


if __name__ == "__main__":
    main()

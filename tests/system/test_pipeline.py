"""docs/pipelines.md, run: the admin's bootstrap and both jobs, as written, with the document's
files -- through the installed ``portalctl`` console script in subprocesses (and the
bootstrap's ``manage.py`` command in the portal's checkout) -- against a live portal whose
probes (the ``prober`` fixture) watch the "deployed" services on a local HTTP server. The jobs
run with the token the bootstrap made, limited to checkout.

Two things differ from a real pipeline, each done where it is said: the checks' targets are
the local server's, and the gate's bake is shortened (``--bake 60`` becomes ``--bake 1``)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from werkzeug import Response

from portal.models import ApiToken
from services.models import ConfigVersion, Deployment, Service
from tests.conftest import database_url

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(settings.BASE_DIR) / "docs" / "pipelines.md"
ROLLOUT = """#!/bin/sh
# The pipeline's own deployment: here it only keeps the configuration it was given.
cp "$1" deployed.env
"""
BAKE, SHORT_BAKE = "--bake 60", "--bake 1"
INSTALL = 'pip install "portalctl @ git+https://git.example.com/platform/service-portal.git@main#subdirectory=portalctl"'
SCOPES = "registry:read,registry:write,config:read,config:write"
GOOD_VALUES = "CURRENCY='EUR'\nLOG_LEVEL='INFO'\nTIMEOUT='30'\n"
ROLLED_BACK = "configuration rolled back to version 1 (what 0a1b2c3 carried) as version 3"


def code_after(text: str, marker: str) -> str:
    """The first fenced block after ``marker`` in the document."""
    found = re.search(re.escape(marker) + r".*?```\w*\n(.*?)```", text, re.S)
    assert found, f"docs/pipelines.md has no code block after {marker!r}"
    return found.group(1)


def shortened(script: str) -> str:
    """The script with the gate's bake shortened, so a test does not wait a minute."""
    return script.replace(BAKE, SHORT_BAKE)


@pytest.fixture
def installed() -> Path:
    """The directory of the console script ``pip install`` made (the venv's bin)."""
    script = shutil.which("portalctl", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("no portalctl console script: run pip install -e '.[dev]'")
    return Path(script).parent


@pytest.fixture
def health(httpserver) -> dict:
    """What each "deployed" service's health check answers (its HTTP status), changed by a
    test to break a release; the handlers stay registered, so no probe ever finds none."""
    statuses = {"checkout": 200, "accounts": 200}
    for name in statuses:
        httpserver.expect_request(f"/{name}/healthz").respond_with_handler(
            lambda request, name=name: Response("ok", status=statuses[name])
        )
    return statuses


@pytest.fixture
def workspace(tmp_path, httpserver, health) -> Path:
    """A checkout of the pipeline's repository with the document's files; the checks point at
    the local server."""
    text = DOC.read_text()
    (tmp_path / "deploy").mkdir()
    files = {
        "bootstrap.yaml": ("the admin's", "accounts"),
        "portal.yaml": ("the pipeline's", "checkout"),
    }
    for file, (whose, name) in files.items():
        manifest = code_after(text, f"`deploy/{file}`, {whose}")
        url = f"https://{name}.example.com/healthz"
        assert url in manifest
        manifest = manifest.replace(url, httpserver.url_for(f"/{name}/healthz"))
        (tmp_path / "deploy" / file).write_text(manifest)
    values = code_after(text, "`deploy/checkout.production.yaml`:")
    (tmp_path / "deploy" / "checkout.production.yaml").write_text(values)
    rollout = tmp_path / "deploy" / "rollout.sh"
    rollout.write_text(ROLLOUT)
    rollout.chmod(0o755)
    return tmp_path


@pytest.fixture
def base_env(installed, live_server) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("PORTAL_TOKEN", "ADMIN_TOKEN")}
    return {
        **environ,
        "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}",
        "PORTAL_URL": live_server.url,
    }


def portal_host_env(base_env: dict) -> dict:
    """A shell where the portal runs: its checkout, its database and broker."""
    return {
        **base_env,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }


def run(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def bootstrap(workspace: Path, base_env: dict, admin_token: str) -> str:
    """The document's bootstrap, as written: the admin's apply from the repository, then the
    pipeline's token made where the portal runs. Returns that token's secret."""
    text = DOC.read_text()
    applied = run(
        code_after(text, "From the repository, with an admin's token"),
        workspace,
        {**base_env, "ADMIN_TOKEN": admin_token},
    )
    assert applied.returncode == 0, applied.stderr
    assert "created: accounts, checkout" in applied.stdout
    made = run(
        code_after(text, "Where the portal runs"),
        Path(settings.BASE_DIR),
        portal_host_env(base_env),
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]  # "the last line printed"


@pytest.fixture
def job_env(workspace, base_env, token) -> dict:
    """The pipeline's environment after the bootstrap: its token is the one limited to
    checkout that the bootstrap made (``token``, unrestricted, is the admin's)."""
    return {**base_env, "PORTAL_TOKEN": bootstrap(workspace, base_env, token)}


def current_configuration(workspace: Path, env: dict) -> str:
    result = run("portalctl config get checkout --format env", workspace, env)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- the bootstrap ------------------------------------------------------------------------


def test_the_bootstrap_runs_as_documented_and_the_token_it_makes_reaches_checkout_only(
    workspace, base_env, token
):
    host = portal_host_env(base_env)
    team_token = f"python manage.py create_api_token ci-shop --scopes {SCOPES} --teams shop"
    # A token limited to the team cannot be made before the team exists.
    early = run(team_token, Path(settings.BASE_DIR), host)
    assert early.returncode != 0
    assert "no team named shop" in early.stderr

    env = {**base_env, "PORTAL_TOKEN": bootstrap(workspace, base_env, token)}
    made = ApiToken.objects.get(name="ci-checkout")
    assert (made.services, made.teams, sorted(made.scopes)) == (
        ["checkout"],
        [],
        sorted(SCOPES.split(",")),
    )
    checkout = Service.objects.get(name="checkout")
    assert checkout.team.name == "shop"
    assert [(d.depends_on.name, d.kind) for d in checkout.dependency_links.all()] == [
        ("accounts", "hard")
    ]
    assert checkout.on_failed_verification == "rollback_config"
    # After the bootstrap it can be made.
    assert run(team_token, Path(settings.BASE_DIR), host).returncode == 0

    # The pipeline's token on the whole estate: refused, naming accounts; nothing stored.
    whole = run("portalctl apply deploy/bootstrap.yaml deploy/portal.yaml", workspace, env)
    assert whole.returncode == 1
    assert "may not act on: accounts" in whole.stderr
    # On checkout's own manifest: what the jobs apply.
    own = run("portalctl apply deploy/portal.yaml", workspace, env)
    assert own.returncode == 0, own.stderr
    assert "unchanged: checkout" in own.stdout
    # It may change checkout's entry, checks and schema...
    portal_yaml = workspace / "deploy" / "portal.yaml"
    original = portal_yaml.read_text()
    changed = original.replace("interval: 10", "interval: 20").replace(
        "is_critical: true", "is_critical: true\n    description: Takes the orders"
    )
    changed = changed.replace("choices: [DEBUG, INFO", "choices: [TRACE, DEBUG, INFO")
    portal_yaml.write_text(changed)
    updated = run("portalctl apply deploy/portal.yaml", workspace, env)
    assert updated.returncode == 0, updated.stderr
    assert "updated: checkout" in updated.stdout
    checkout.refresh_from_db()
    assert checkout.description == "Takes the orders"
    assert list(checkout.checks.values_list("interval", flat=True)) == [20]
    # ...but not a team, nor its edge to a service outside its reach.
    portal_yaml.write_text("teams: [{name: shop, contact: '#shop'}]\n" + changed)
    team = run("portalctl apply deploy/portal.yaml", workspace, env)
    assert team.returncode == 1
    assert "may not change teams: shop" in team.stderr
    portal_yaml.write_text(changed.replace("dependencies: [accounts]", "dependencies: []"))
    edge = run("portalctl apply deploy/portal.yaml", workspace, env)
    assert edge.returncode == 1
    assert "outside its reach: accounts" in edge.stderr
    assert checkout.dependency_links.count() == 1


# --- GitHub Actions -----------------------------------------------------------------------


def github_job() -> dict:
    return yaml.safe_load(code_after(DOC.read_text(), "## GitHub Actions"))["jobs"][
        "deploy-checkout"
    ]


def run_github_job(workspace: Path, env: dict, sha: str) -> tuple[str | None, list[str], str]:
    """The job's steps as a runner takes them: each ``run`` in a shell of its own, what a
    step writes to ``$GITHUB_ENV`` in the environment of the next; once a step fails the
    others are skipped and the ``if: failure()`` ones run. Returns the step that failed (None
    when none did), the steps run and the job's log."""
    github_env = workspace / f"github-{sha}.env"
    env = {
        **env,
        "GITHUB_ENV": str(github_env),
        "GITHUB_SHA": sha,
        "GITHUB_SERVER_URL": "https://github.example.com",
        "GITHUB_REPOSITORY": "shop/checkout",
        "GITHUB_RUN_ID": "42",
    }
    failed, ran, log = None, [], []
    for step in github_job()["steps"]:
        if "run" not in step:
            continue  # actions
        if step["name"] == "Install portalctl":
            assert step["run"] == INSTALL  # installed already: the venv's script
            continue
        condition = step.get("if")
        assert condition in (None, "failure()")
        if (condition == "failure()") != (failed is not None):
            continue
        result = run(shortened(step["run"]), workspace, env)
        ran.append(step["name"])
        log.append(f"## {step['name']}\n{result.stdout}{result.stderr}")
        if result.returncode != 0 and failed is None:
            failed = step["name"]
        if github_env.exists():  # what a step exports to the next ones
            env.update(line.split("=", 1) for line in github_env.read_text().splitlines())
    return failed, ran, "\n".join(log)


@pytest.fixture
def jq():
    if shutil.which("jq") is None:
        pytest.skip("the GitHub job reads JSON with jq, which is not installed")


def test_the_github_actions_job_runs_as_documented(jq, workspace, job_env, prober):
    verify = next(s for s in github_job()["steps"] if s.get("name") == "Verify the release")
    assert BAKE in verify["run"]
    prober()
    failed, ran, log = run_github_job(workspace, job_env, "0a1b2c3")
    assert failed is None, log
    assert "Verify the release" in ran and "Report the deployment" in ran
    assert "Report a failed deployment" not in ran
    assert (workspace / "deployed.env").read_text() == GOOD_VALUES
    # The verified in_progress report and the succeeded one after it: one deployment, whose
    # status moved, with one verification, held for the bake the job gave; reported with the
    # pipeline's own token.
    (deployment,) = Deployment.objects.filter(service__name="checkout")
    assert (deployment.version, deployment.config_version, deployment.status) == (
        "0a1b2c3",
        1,
        "succeeded",
    )
    assert deployment.verification_state == "passed"
    assert deployment.bake_seconds == 1
    assert deployment.actor == "token:ci-checkout"
    assert deployment.link == "https://github.example.com/shop/checkout/actions/runs/42"


def test_a_broken_release_fails_the_github_job_and_the_configuration_is_rolled_back(
    jq, workspace, job_env, prober, health
):
    prober()
    failed, _, log = run_github_job(workspace, job_env, "0a1b2c3")
    assert failed is None, log
    # The next release changes a value, and its health check answers 500.
    values = workspace / "deploy" / "checkout.production.yaml"
    values.write_text(values.read_text().replace("timeout: 30", "timeout: 45"))
    health["checkout"] = 500
    failed, ran, log = run_github_job(workspace, job_env, "4d5e6f7")
    assert failed == "Verify the release", log
    assert ran[-1] == "Report a failed deployment" and "Report the deployment" not in ran
    assert "checkout 4d5e6f7: verification failed" in log
    assert "check http unhealthy: HTTP 500" in log
    # The portal rolled the configuration back itself; the job log says so, in the words the
    # document quotes.
    assert ROLLED_BACK in log
    assert ROLLED_BACK in " ".join(DOC.read_text().split())
    assert (workspace / "deployed.env").read_text() != GOOD_VALUES  # the broken one ran
    assert current_configuration(workspace, job_env) == GOOD_VALUES
    latest = ConfigVersion.objects.filter(service__name="checkout").latest("version")
    assert (latest.version, latest.rolled_back_from) == (3, 1)
    # The failure step's report is the failed deployment: its status moved, its verdict stays.
    runs = Deployment.objects.filter(service__name="checkout").order_by("id")
    assert [(d.version, d.status, d.verification_state) for d in runs] == [
        ("0a1b2c3", "succeeded", "passed"),
        ("4d5e6f7", "failed", "failed"),
    ]


# --- GitLab CI ----------------------------------------------------------------------------


def gitlab_job() -> dict:
    return yaml.safe_load(code_after(DOC.read_text(), "## GitLab CI"))["deploy-checkout"]


def run_gitlab_job(workspace: Path, env: dict, sha: str) -> tuple[int, str]:
    """``script`` in one shell, stopping at the first command that fails, then
    ``after_script`` in another with ``CI_JOB_STATUS``, as a runner does. Returns the
    script's exit status and the job's log."""
    job = gitlab_job()
    assert job["before_script"] == [INSTALL]  # installed already: the venv's script
    env = {
        **env,
        "CI_COMMIT_SHA": sha,
        "CI_JOB_URL": "https://gitlab.example.com/shop/checkout/-/jobs/7",
    }
    script = run(shortened("\n".join(job["script"])), workspace, env)
    status = "success" if script.returncode == 0 else "failed"
    after = run("\n".join(job["after_script"]), workspace, {**env, "CI_JOB_STATUS": status})
    assert after.returncode == 0, after.stderr
    log = f"{script.stdout}{script.stderr}\n## after_script\n{after.stdout}{after.stderr}"
    return script.returncode, log


def test_the_gitlab_job_runs_as_documented(workspace, job_env, prober):
    assert BAKE in "\n".join(gitlab_job()["script"])
    prober()
    code, log = run_gitlab_job(workspace, job_env, "9f8e7d6")
    assert code == 0, log
    assert "checkout 9f8e7d6: verification passed" in log
    assert "usable: checkout, accounts" in log
    assert log.endswith("## after_script\n")  # nothing to report
    assert ConfigVersion.objects.filter(service__name="checkout").count() == 1
    deployment = Deployment.objects.filter(service__name="checkout").latest("id")
    assert (deployment.version, deployment.config_version) == ("9f8e7d6", 1)
    assert (deployment.status, deployment.bake_seconds) == ("succeeded", 1)
    assert deployment.actor == "token:ci-checkout"
    # Run again, as a retried job does: nothing new is stored but the deployment report.
    code, log = run_gitlab_job(workspace, job_env, "9f8e7d6")
    assert code == 0, log
    assert "unchanged: checkout" in log
    assert ConfigVersion.objects.filter(service__name="checkout").count() == 1
    # One deployment per run: the rerun's in_progress report is a new rollout, verified anew.
    runs = Deployment.objects.filter(service__name="checkout").order_by("id")
    assert [(d.status, d.verification_state) for d in runs] == [("succeeded", "passed")] * 2


def test_a_broken_release_fails_the_gitlab_job_and_the_configuration_is_rolled_back(
    workspace, job_env, prober, health
):
    prober()
    # The first release ever is broken: the job fails, but there is nothing to roll back to.
    health["checkout"] = 500
    code, log = run_gitlab_job(workspace, job_env, "5e5e5e5")
    assert code != 0, log
    assert "checkout 5e5e5e5: verification failed" in log
    assert "configuration rollback refused: no earlier passed deployment" in log
    assert ConfigVersion.objects.filter(service__name="checkout").count() == 1
    # The next one passes; the one after it is broken.
    health["checkout"] = 200
    code, log = run_gitlab_job(workspace, job_env, "9f8e7d6")
    assert code == 0, log
    values = workspace / "deploy" / "checkout.production.yaml"
    values.write_text(values.read_text().replace("timeout: 30", "timeout: 45"))
    health["checkout"] = 500
    code, log = run_gitlab_job(workspace, job_env, "1a2b3c4")
    assert code != 0, log
    assert "checkout 1a2b3c4: verification failed" in log
    assert "check http unhealthy: HTTP 500" in log
    assert "configuration rolled back to version 1 (what 9f8e7d6 carried) as version 3" in log
    assert "reported checkout 1a2b3c4 failed" in log  # after_script
    assert current_configuration(workspace, job_env) == GOOD_VALUES
    runs = Deployment.objects.filter(service__name="checkout").order_by("id")
    assert [(d.version, d.status, d.verification_state) for d in runs] == [
        ("5e5e5e5", "failed", "failed"),
        ("9f8e7d6", "succeeded", "passed"),
        ("1a2b3c4", "failed", "failed"),
    ]


def test_the_client_imports_no_django_and_no_portal_app(installed):
    code = (
        "import sys, portalctl.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'ninja', 'portal', 'services', 'healthchecks', 'manifest', 'pages'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": ""},
    )
    assert result.stdout.strip() == "[]"

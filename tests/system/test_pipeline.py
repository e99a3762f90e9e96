"""docs/pipelines.md, run: its files and both jobs' commands, through the installed
``portalctl`` console script in subprocesses, against a live portal whose probes (the
``prober`` fixture) watch the "deployed" service on a local HTTP server."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from services.models import ConfigVersion, Deployment

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(settings.BASE_DIR) / "docs" / "pipelines.md"
ROLLOUT = """#!/bin/sh
# The pipeline's own deployment: here it only keeps the configuration it was given.
cp "$1" deployed.env
"""


def code_after(text: str, marker: str) -> str:
    """The first fenced block after ``marker`` in the document."""
    found = re.search(re.escape(marker) + r".*?```\w*\n(.*?)```", text, re.S)
    assert found, f"docs/pipelines.md has no code block after {marker!r}"
    return found.group(1)


@pytest.fixture
def installed() -> Path:
    """The directory of the console script ``pip install`` made (the venv's bin)."""
    script = shutil.which("portalctl", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("no portalctl console script: run pip install -e '.[dev]'")
    return Path(script).parent


@pytest.fixture
def workspace(tmp_path, httpserver) -> Path:
    """A checkout with the document's files; the checks point at a local server."""
    text = DOC.read_text()
    for name in ("checkout", "accounts"):
        httpserver.expect_request(f"/{name}/healthz").respond_with_data("ok")
    manifest = code_after(text, "`deploy/portal.yaml`:")
    for name in ("checkout", "accounts"):
        url = f"https://{name}.example.com/healthz"
        assert url in manifest
        manifest = manifest.replace(url, httpserver.url_for(f"/{name}/healthz"))
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "portal.yaml").write_text(manifest)
    values = code_after(text, "`deploy/checkout.production.yaml`:")
    (tmp_path / "deploy" / "checkout.production.yaml").write_text(values)
    rollout = tmp_path / "deploy" / "rollout.sh"
    rollout.write_text(ROLLOUT)
    rollout.chmod(0o755)
    return tmp_path


@pytest.fixture
def job_env(installed, live_server, token) -> dict:
    return {
        **os.environ,
        "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}",
        "PORTAL_URL": live_server.url,
        "PORTAL_TOKEN": token,
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


def test_the_github_actions_job_runs_as_documented(workspace, job_env, prober):
    if shutil.which("jq") is None:
        pytest.skip("the GitHub job reads JSON with jq, which is not installed")
    job = yaml.safe_load(code_after(DOC.read_text(), "## GitHub Actions"))
    steps = job["jobs"]["deploy-checkout"]["steps"]
    github_env = workspace / "github.env"
    env = {
        **job_env,
        "GITHUB_ENV": str(github_env),
        "GITHUB_SHA": "0a1b2c3",
        "GITHUB_SERVER_URL": "https://github.example.com",
        "GITHUB_REPOSITORY": "shop/checkout",
        "GITHUB_RUN_ID": "42",
    }
    prober()
    ran = []
    for step in steps:
        if "run" not in step or "if" in step:
            continue  # actions, and the step that runs only on failure
        if step["name"] == "Install portalctl":
            assert "pip install" in step["run"]  # installed already: the venv's script
            continue
        result = run(step["run"], workspace, env)
        assert result.returncode == 0, f"{step['name']}:\n{result.stdout}\n{result.stderr}"
        ran.append(step["name"])
        if github_env.exists():  # what a step exports to the next ones
            env.update(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert "Verify the release" in ran and "Report the deployment" in ran
    assert (
        workspace / "deployed.env"
    ).read_text() == "CURRENCY='EUR'\nLOG_LEVEL='INFO'\nTIMEOUT='30'\n"
    # The verified in_progress report and the succeeded one after it: one deployment, whose
    # status moved, with one verification.
    (deployment,) = Deployment.objects.filter(service__name="checkout")
    assert (deployment.version, deployment.config_version, deployment.status) == (
        "0a1b2c3",
        1,
        "succeeded",
    )
    assert deployment.verification_state == "passed"
    assert deployment.link == "https://github.example.com/shop/checkout/actions/runs/42"


def test_the_gitlab_job_runs_as_documented(workspace, job_env, prober):
    job = yaml.safe_load(code_after(DOC.read_text(), "## GitLab CI"))["deploy-checkout"]
    assert any("pip install" in line for line in job["before_script"])
    env = {
        **job_env,
        "CI_COMMIT_SHA": "9f8e7d6",
        "CI_JOB_URL": "https://gitlab.example.com/shop/checkout/-/jobs/7",
    }
    prober()
    result = run("\n".join(job["script"]), workspace, env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "checkout 9f8e7d6: verification passed" in result.stdout
    assert "usable: checkout, accounts" in result.stdout
    assert ConfigVersion.objects.filter(service__name="checkout").count() == 1
    deployment = Deployment.objects.filter(service__name="checkout").latest("id")
    assert (deployment.version, deployment.config_version) == ("9f8e7d6", 1)
    assert deployment.status == "succeeded"
    # Run again, as a retried job does: nothing new is stored but the deployment report.
    again = run("\n".join(job["script"]), workspace, env)
    assert again.returncode == 0, again.stderr
    assert "unchanged: checkout, accounts" in again.stdout
    assert ConfigVersion.objects.filter(service__name="checkout").count() == 1
    # One deployment per run: the rerun's in_progress report is a new rollout, verified anew.
    runs = Deployment.objects.filter(service__name="checkout").order_by("id")
    assert [(d.status, d.verification_state) for d in runs] == [("succeeded", "passed")] * 2


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

"""docs/pipelines.md's install, run: the client's own distribution installed as the document
says -- its `pip install "portalctl @ git+...@main#subdirectory=portalctl"`, only the
repository's address a local one -- into a fresh virtual environment, from a git repository
holding this working tree's client (what is tested is what is about to be committed, not the
last commit). The build backend (setuptools) and the dependencies (click, PyYAML) come from
the package index pip is configured with (PyPI, or a mirror), as they do for a pipeline: what
is tested is what a pipeline gets, and the index is reachable where the system tier runs (a
wheelhouse of our own copies would test those instead; the project's environment has no
setuptools to build one without it)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
DOC = ROOT / "docs" / "pipelines.md"
pytestmark = pytest.mark.django_db(transaction=True)

REPOSITORY = "https://git.example.com/platform/service-portal.git"


def documented_install() -> str:
    block = re.search(r"installs it alone:\n\n```sh\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/pipelines.md shows no install block"
    (command,) = [line for line in block.group(1).splitlines() if line.startswith("pip ")]
    return command


def kib(path: Path) -> int:
    """Disk usage, as `du -sk` counts it."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def repository_with_this_client(where: Path) -> Path:
    """A git repository (branch main) holding the working tree's ``portalctl/``."""
    repo = where / "service-portal"
    shutil.copytree(
        ROOT / "portalctl",
        repo / "portalctl",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
    )
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "client"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def test_the_client_installs_alone_without_the_server_and_talks_to_the_portal(
    tmp_path, live_server
):
    assert sys.version_info[:2] >= (3, 12)
    command = documented_install()
    assert f"git+{REPOSITORY}@main#subdirectory=portalctl" in command
    repo = repository_with_this_client(tmp_path)
    # (file://localhost/...: pip refuses a `name @ git+file:///...` address without a host.)
    command = command.replace(f"git+{REPOSITORY}", f"git+file://localhost{repo}")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "DJANGO_SETTINGS_MODULE": "",
    }
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    before = kib(site)
    installed = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    added = kib(site) - before

    listed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert names == {"pip", "portalctl", "click", "pyyaml"}
    for server_part in ("django", "celery", "psycopg", "ninja"):
        probe = subprocess.run(
            [venv / "bin" / "python", "-c", f"import {server_part}"], env=env, capture_output=True
        )
        assert probe.returncode != 0, f"{server_part} is importable"

    helped = subprocess.run(
        [venv / "bin" / "portalctl", "--help"], env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0, helped.stderr
    assert "deploy" in helped.stdout and "apply" in helped.stdout
    status = subprocess.run(
        [venv / "bin" / "portalctl", "status", "--url", live_server.url],
        env=env,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr

    # The figure the document gives, and the bound it says the suite holds it to.
    bound = re.search(r"the suite holds it under (\d+) MiB", DOC.read_text())
    assert bound, "docs/pipelines.md states no bound on the installed size"
    print(
        f"portalctl added {added / 1024:.1f} MiB to a fresh venv's site-packages "
        f"({before / 1024:.1f} MiB before, pip's own; {(before + added) / 1024:.1f} MiB after)"
    )
    assert added < int(bound.group(1)) * 1024

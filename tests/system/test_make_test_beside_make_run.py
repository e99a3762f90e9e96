"""`make test` beside a running `make run` leaves its web server alone (issue 28, item 2).

`make test` installs the dev dependencies (`pip install -e '.[dev]'`), which writes the
editable install's files in `.venv` again: its finder module (`__editable___*_finder.py`,
imported at start-up by its `.pth` file), the `.pth` file and the `dist-info` folder.
runserver's reloader watched every imported module, the finder among them, and restarted the
web server: for the 4 s it took, every demo check failed and incidents opened on 5 services.
The reloader now restarts for the checkout's code only, never for a file of an installation
(portal.devreload).

The test runs `make run`'s last step (runportal) on a Python environment of its own, made as
`.venv` is -- the editable install's files copied from `.venv`, the rest of `.venv` on its
path -- and rewrites those files as pip does (removed, then written anew), never `.venv`'s
own: other processes run from it. It runs a copy of the checkout's code, so that nobody's
edit to the checkout restarts its server meanwhile."""

import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import database_url
from tests.healthchecks.servers import closed_port
from tests.system.test_running import child_pid, child_pids, shell_env, stop, wait_until_up

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.serial]
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])  # .venv's


def editable_install_files(site_packages: Path) -> list[Path]:
    """What `pip install -e .` writes in site-packages: the finder, its .pth, the dist-info."""
    found = [
        *site_packages.glob("__editable__*"),
        *site_packages.glob("service_portal-*.dist-info"),
    ]
    names = {p.name for p in found}
    assert any(n.endswith("_finder.py") for n in names), names
    assert any(n.endswith(".pth") for n in names), names
    assert any(n.endswith(".dist-info") for n in names), names
    return found


def make_environment(where: Path) -> tuple[Path, Path]:
    """A Python environment made as `.venv` is: the portal's editable install in its own
    site-packages, every other package read from `.venv`'s (a path line: `.venv`'s .pth files
    are not run, so the finder imported is this environment's). Returns its python and its
    site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    own = Path(purelib)
    for path in editable_install_files(SITE_PACKAGES):
        if path.is_dir():
            shutil.copytree(path, own / path.name)
        else:
            shutil.copy2(path, own / path.name)
    (own / "zz-dot-venv.pth").write_text(f"{SITE_PACKAGES}\n")
    return python, own


# What a checkout holds besides the portal's code: left out of the copy.
NOT_CODE = {".git", ".venv", "var", "tests", "bench", "docs", "deploy", "staticfiles"}


def copy_checkout(where: Path) -> Path:
    """The checkout's code (manage.py, the packages, templates, static files) at ``where``."""
    for path in settings.BASE_DIR.iterdir():
        if path.name in NOT_CODE or path.name.startswith(".") or path.suffix in (".md", ".toml"):
            continue
        if path.is_dir():
            shutil.copytree(path, where / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, where / path.name)
    return where


def reinstall(site_packages: Path) -> None:
    """What `pip install -e '.[dev]'` does to the editable install's files: each removed (the
    old install uninstalled), then written anew."""
    for path in editable_install_files(site_packages):
        if path.is_dir():
            kept = path.with_name(path.name + ".kept")
            shutil.copytree(path, kept)
            shutil.rmtree(path)
            kept.rename(path)
            for inside in path.rglob("*"):
                inside.touch()
        else:
            content = path.read_bytes()
            path.unlink()
            path.write_bytes(content)


def answered(url: str) -> bool:
    """Any answer at all (a slow one too, on a busy machine); refused or silent: False."""
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def serving_pid(portal: subprocess.Popen) -> tuple[int, int]:
    """runportal's web child (runserver's reloader) and the process that serves under it."""
    web = child_pid(portal, "runserver")
    deadline = time.monotonic() + 30
    while not (under := child_pids(web)):
        assert time.monotonic() < deadline, "runserver started no server"
        time.sleep(0.1)
    assert len(under) == 1, under
    return web, under[0]


def test_reinstalling_the_dev_dependencies_leaves_make_runs_web_server_serving(tmp_path):
    python, environment_site = make_environment(tmp_path / "venv")
    checkout = copy_checkout(tmp_path / "checkout")
    port = closed_port()
    url = f"http://127.0.0.1:{port}/health/"
    env = shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        LOG_LEVEL="warning",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        PORTAL_VAR_DIR=str(tmp_path / "var"),
    )
    log = tmp_path / "runportal.log"
    with log.open("w") as sink:
        portal = subprocess.Popen(
            [
                str(python),
                str(checkout / "manage.py"),
                "runportal",
                f"--addr=127.0.0.1:{port}",
                "--concurrency=1",
            ],
            cwd=checkout,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(url, portal)
        web, server = serving_pid(portal)
        # The server runs on the environment's interpreter, from the copy.
        command = Path(f"/proc/{server}/cmdline").read_bytes().decode().split("\0")
        assert Path(command[0]).parent == python.parent and command[1].startswith(str(checkout))
        time.sleep(3)  # the reloader's first look at every file, once a second
        unanswered, began = 0, time.monotonic()
        while time.monotonic() - began < 8:  # pip rewrites them again and again meanwhile
            reinstall(environment_site)
            unanswered += not answered(url)
            time.sleep(0.5)
        assert serving_pid(portal) == (web, server), log.read_text()[-3000:]
        assert unanswered == 0, log.read_text()[-3000:]

        # The reloader was watching all along: a change to the checkout's code restarts it.
        edited = checkout / "portal" / "devreload.py"
        edited.write_text(edited.read_text() + "# edited\n")
        deadline = time.monotonic() + 60
        while serving_pid(portal)[1] == server:
            assert time.monotonic() < deadline, "the code changed and the server went on"
            time.sleep(0.25)
        assert serving_pid(portal)[0] == web
        wait_until_up(url, portal)
    finally:
        assert stop(portal, signal.SIGINT) == 0

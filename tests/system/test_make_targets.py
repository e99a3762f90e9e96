"""The README's "Quick start" about the Makefile and the files around it, read from what
`make` would really run (`make -n`) and what the settings really read: `make run` needs only a
Python >= 3.12; `make test` runs pytest on PostgreSQL (its default URL, the test database
pytest-django makes of it) and Redis (an index of its own), reads no `.env`, then the `sqlite`
part on SQLite, passing ARGS to both; `make lint` runs ruff, the format check, the
missing-migrations check and the type check (`make typecheck` runs it alone); CI's script
starts what does not answer and runs both; `make run`'s `.env` holds what the README lists and
its links point where it listens; without Chromium the browser tests are skipped with the
reason. (That the environment wins over `.env` and the
image has none: test_env_file_wins.py, test_env_file_boundaries.py.)"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.conf import settings

import tests.system.browser.conftest as browser_setup
from tests.conftest import database_url

BASE = Path(settings.BASE_DIR)
MAKE = "/usr/bin/make"


def make_plan(*args: str) -> str:
    """The commands `make` would run, without running them."""
    done = subprocess.run([MAKE, "-n", *args], cwd=BASE, capture_output=True, text=True, check=True)
    return done.stdout.replace("\\\n", " ")  # a recipe's continued lines as one


def fake_python(folder: Path, name: str, meets_the_check: bool) -> None:
    """A python on PATH: the real one, or one that fails the Makefile's version check as a
    Python 3.11 does."""
    path = folder / name
    if meets_the_check:
        path.symlink_to(sys.executable)
    else:
        path.write_text("#!/bin/sh\nexit 1\n")
        path.chmod(0o755)


def test_make_run_needs_only_a_python_3_12(tmp_path):
    assert tomllib.loads((BASE / "pyproject.toml").read_text())["project"]["requires-python"] == (
        ">=3.12"
    )
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    for name in ("python3.13", "python3.12", "python3"):
        fake_python(old, name, meets_the_check=False)
    fake_python(new, "python3", meets_the_check=True)
    venv = tmp_path / "venv"
    refused = subprocess.run(
        [MAKE, "install", f"VENV={venv}"],
        cwd=BASE,
        env={"PATH": str(old), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "Python >= 3.12 not found" in refused.stdout + refused.stderr
    assert not venv.exists()
    planned = subprocess.run(
        [MAKE, "-n", "install", f"VENV={venv}"],
        cwd=BASE,
        env={"PATH": str(new), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"python3 -m venv {venv}" in planned


def test_make_test_runs_postgresql_then_sqlite_reads_no_env_file_and_passes_args():
    plan = make_plan("test", "ARGS=-k registry -x")
    # One recipe line runs two parts, the first in the background: split at "& " and "; ".
    commands = [c for line in plan.splitlines() for c in re.split(r" & |; ", line)]
    runs = [command for command in commands if "-m pytest" in command]
    assert len(runs) == 5, plan
    parallel, sqlite, processes, serial, sqlite_serial = runs
    for run in runs:
        assert "PORTAL_ENV_FILE= " in run  # reads no .env
        assert "-k registry -x" in run
        assert 'REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"' in run
    for run in (parallel, processes, serial):
        assert 'DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal}"' in run
    for run in (sqlite, sqlite_serial):
        assert "PORTAL_TEST_DATABASE=sqlite" in run and 'DATABASE_URL="sqlite:///' in run
    # What measures nothing three at a time; what starts processes three at a time, the SQLite
    # part beside it (in the background, its output shown after; both must pass); then the
    # tests with deadlines one at a time, PostgreSQL's then SQLite's.
    assert '-m pytest -m "not processes and not serial" -n 3 --dist worksteal' in parallel
    assert '-m pytest -m "sqlite and not serial" -k' in sqlite and f"{sqlite} & lite=$!;" in plan
    assert "-m pytest -m processes -n 3 --dist worksteal -k" in processes
    assert "wait $lite" in plan and "cat var/test-sqlite.log" in plan
    assert "[ $pg -eq 0 ] || [ $pg -eq 5 ]" in plan and "[ $sqlite -eq 0 ]" in plan
    assert "-m pytest -m serial -k" in serial and " -n " not in serial
    assert '-m pytest -m "sqlite and serial" -k' in sqlite_serial and " -n " not in sqlite_serial
    order = [plan.index(run) for run in runs]
    assert order == sorted(order)


def test_make_check_lints_beside_the_fast_tier_in_parallel():
    plan = make_plan("check", "ARGS=-x").splitlines()
    lint = [line for line in make_plan("lint").splitlines() if ".venv" in line]
    (both,) = [line for line in plan if "-j2" in line]
    assert both.split()[-2:] == ["lint", "fast-tier"] and "-Oline" in both
    runs = [line for line in plan if "-m pytest" in line]
    assert len(runs) == 1 and all(step in plan for step in lint)
    (fast,) = runs
    assert '-m pytest -m "not system" -n 3 --dist worksteal -x' in fast
    assert "PORTAL_ENV_FILE= " in fast
    assert 'DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal}"' in fast


def test_pytest_django_tests_on_a_database_of_its_own_named_test_portal():
    code = "from django.db import connection; print(connection.creation._get_test_db_name())"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=BASE,
        env={
            "PATH": os.environ["PATH"],
            "PORTAL_ENV_FILE": "",
            "DEBUG": "true",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/portal",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "test_portal"


def test_make_lint_runs_ruff_the_format_check_and_the_migrations_check():
    plan = make_plan("lint")
    assert "-m ruff check ." in plan
    assert "-m ruff format --check ." in plan
    assert "makemigrations --check --dry-run" in plan


def test_make_lint_runs_the_type_check_which_make_typecheck_runs_alone():
    check = "PORTAL_ENV_FILE= DEBUG=true .venv/bin/python -m mypy"
    assert check in make_plan("lint").splitlines()
    assert check in make_plan("typecheck").splitlines()
    assert "ruff" not in make_plan("typecheck")


def test_ci_starts_what_does_not_answer_then_lints_and_tests():
    script = (BASE / ".ci" / "run").read_text()
    steps = ["pg_isready", "redis-cli -h 127.0.0.1 -p 6379 ping", ".ci/install-chromium"]
    steps += ["make lint", "make test"]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "if ! pg_isready" in script and "if ! redis-cli" in script


def test_without_chromium_the_browser_tests_are_skipped_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(browser_setup, "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(pytest.skip.Exception) as skipped:
        next(browser_setup.browser.__wrapped__())
    assert "is missing: run .ci/install-chromium" in str(skipped.value)


def test_make_runs_env_file_holds_debug_a_key_console_logs_and_the_urls(tmp_path, db):
    """`make run`'s first step, as it runs it, writes what the README lists."""
    env_file = tmp_path / ".env"
    urls = {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL}  # they answer
    written = subprocess.run(
        [sys.executable, "-m", "portal.devenv"],
        cwd=BASE,
        env={"PATH": os.environ["PATH"], "PORTAL_ENV_FILE": str(env_file), **urls},
        capture_output=True,
        text=True,
    )
    assert written.returncode == 0, written.stderr
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert values["DEBUG"] == "true" and values["LOG_FORMAT"] == "console"
    assert len(values["SECRET_KEY"]) >= 50
    assert {name: values[name] for name in urls} == urls


def test_make_run_points_notification_links_where_it_listens(tmp_path):
    """`make run PORT=...` exports PORTAL_BASE_URL (the links in notifications) and DEBUG to
    every step; a stand-in python prints what each step was given."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than pyproject.toml: nothing to install
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\necho "$PORTAL_BASE_URL $DEBUG"\n')
    python.chmod(0o755)
    done = subprocess.run(
        [MAKE, "run", f"VENV={venv}", f"PY={python}", "PORT=9123"],
        cwd=BASE,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    given = [line for line in done.stdout.splitlines() if line.startswith("http")]
    assert given == ["http://127.0.0.1:9123 true"] * 5  # devenv, migrate, ..., runportal

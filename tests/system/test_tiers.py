"""The system tier is what the README says it is (tests/conftest.py): every test under
tests/system, and elsewhere the tests that start a real worker, drive a browser or fuzz a live
server; of it, what starts processes runs three at a time and what has deadlines alone; in it,
passwords are hashed as production hashes them, since portals in other processes read them."""

import json
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from django.contrib.auth.hashers import make_password

BASE = Path(__file__).resolve().parents[2]


# Every `-m` expression the tests below ask about.
EXPRESSIONS = ["system", "not system", "worker or browser or fuzz", "processes", "serial", "worker"]


@cache  # one collection, 15-25 s, answers every expression
def selections() -> dict[str, set[str]]:
    out = Path(tempfile.mkdtemp()) / "selected.json"
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    subprocess.run(
        [*command, "-p", "tests.system.marks_plugin", "tests"],
        cwd=BASE,
        env={**os.environ, "MARKS_OUT": str(out), "MARKS_EXPRESSIONS": json.dumps(EXPRESSIONS)},
        capture_output=True,
        text=True,
        check=True,
    )
    return {expression: set(ids) for expression, ids in json.loads(out.read_text()).items()}


def collected(expression: str) -> set[str]:
    """The tests `pytest -m expression` runs."""
    return selections()[expression]


def test_the_system_tier_is_tests_system_and_the_worker_browser_and_fuzz_tests():
    system, fast = collected("system"), collected("not system")
    assert system and fast and not system & fast
    assert not any(t.startswith("tests/system/") for t in fast)
    files = {t.split("::")[0] for t in system}
    assert {str(p.relative_to(BASE)) for p in (BASE / "tests/system").rglob("test_*.py")} <= files
    # Outside tests/system, exactly the tests marked worker, browser or fuzz.
    elsewhere = {t for t in system if not t.startswith("tests/system/")}
    marked = collected("worker or browser or fuzz")
    assert elsewhere == {t for t in marked if not t.startswith("tests/system/")}
    worker = "tests/automation/test_deliveries.py::test_a_celery_worker_on_the_automation_queue"
    assert any(t.startswith(worker) for t in elsewhere)
    assert any(t.startswith("tests/automation/test_deliveries.py::") for t in fast)


def test_the_system_tiers_processes_and_serial_parts_hold_what_they_promise():
    """`make test` runs the tests that start processes three at a time -- every worker test but
    those marked serial -- and the tests whose deadlines are the promise alone; both are
    system tier and no test is in both."""
    processes, serial, system = collected("processes"), collected("serial"), collected("system")
    assert processes and serial and not processes & serial
    assert processes | serial <= system and system - processes - serial
    assert collected("worker") <= processes | serial
    files = {t.split("::")[0] for t in serial}
    for timed in ("test_ratelimit.py", "test_faults.py", "test_database_outage.py"):
        assert f"tests/system/{timed}" in files
    started = {t.split("::")[0] for t in processes}
    assert {"tests/system/test_running.py", "tests/system/test_worker.py"} <= started
    assert "tests/system/test_authorization_matrix.py" not in files | started


def test_in_the_system_tier_passwords_are_hashed_as_in_production():
    assert make_password("pw").startswith("pbkdf2_sha256$")

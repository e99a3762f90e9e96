"""The README's "Try the API" walkthrough, run as written: its shell block, read from the
README, typed into a second shell in the checkout while `make run` runs (on a free port
instead of 8000, as the README says to do), and each output compared with the one the README
shows -- "outputs from a real run" stays true. The commands it marks "the same again" are run
again, and the deploy gate is watched until it turns 200, as the README's last line says."""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.healthchecks.servers import closed_port
from tests.portal import live_portal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
END = "@@end-of-output@@"


def walkthrough() -> str:
    """The first shell block of the README's "Try the API"."""
    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = text.split("## Try the API", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def commands(block: str) -> list[str]:
    """The block's commands: comments left out, continuation lines and here-documents kept."""
    found, lines = [], iter(block.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = line
        while command.endswith("\\"):
            command += "\n" + next(lines)
        if "<<'EOF'" in command:
            while (more := next(lines)) != "EOF":
                command += "\n" + more
            command += "\nEOF"
        found.append(command)
    return found


def test_the_walkthrough_is_the_seven_commands_the_test_reads():
    kinds = [c.split()[0] for c in commands(walkthrough())]
    assert kinds == ["TOKEN=$(.venv/bin/python", "cat", "curl", "curl", "curl", "curl", "curl"]


def test_the_readme_walkthrough_gives_the_outputs_it_shows(tmp_path):
    port = closed_port()
    env = live_portal.portal_env(port, tmp_path / "var")
    live_portal.load_demo(port, env)
    portal = live_portal.start(port, env, tmp_path / "make-run.log")
    # A second shell "in the checkout": its .venv and manage.py, the files it writes here.
    for name in (".venv", "manage.py"):
        (tmp_path / name).symlink_to(Path(settings.BASE_DIR) / name)
    steps = [c.replace("8000", str(port)) for c in commands(walkthrough())]
    apply, config, gate = steps[2], steps[4], steps[6]
    script = "\n".join(
        f"{step}\nprintf '\\n{END}\\n'"
        for step in [*steps, apply, config]  # the same again
    )
    try:
        live_portal.wait_until_up(f"http://127.0.0.1:{port}/health/", portal)
        shell = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert shell.returncode == 0, shell.stderr
        outputs = [o.strip() for o in shell.stdout.split(END)][: len(steps) + 2]
        (_, _, applied, ordered, stored, exported, first_gate, again, stale) = outputs

        assert json.loads(applied) == {
            "created": ["checkout", "accounts", "orders-db"],
            "updated": [],
            "unchanged": [],
            "teams": {"created": ["shop"], "updated": [], "unchanged": []},
            "dry_run": False,
            "config": {},
        }
        again = json.loads(again)
        assert (again["created"], again["updated"]) == ([], [])
        assert again["unchanged"] == ["checkout", "accounts", "orders-db"]
        assert json.loads(ordered) == {"order": ["accounts", "orders-db", "checkout"]}
        assert json.loads(stored) | {
            "service": "checkout",
            "version": 1,
            "changed": True,
            "stored": True,
            "valid": None,
        } == json.loads(stored)
        error = json.loads(stale)["error"]
        assert error["code"] == "stale_version" and error["current_version"] == 1
        assert error["message"] == (
            "version 0 is no longer current: 'checkout' is at version 1; read it, reapply "
            "your change and send it again"
        )
        assert exported.splitlines() == ["CURRENCY='EUR'", "TIMEOUT='30'"]
        assert "Created token 'walkthrough' with scopes" in shell.stderr  # the note
        assert first_gate == "503"  # unknown until the first result comes in

        began, status = time.monotonic(), first_gate
        while status != "200":
            assert time.monotonic() - began < 30, "the gate did not turn 200"
            time.sleep(1)
            status = subprocess.run(
                ["bash", "-c", gate], cwd=tmp_path, env=env, capture_output=True, text=True
            ).stdout.strip()
        print(f"the gate answered 200 {time.monotonic() - began:.1f} s after the first 503")
    finally:
        assert live_portal.stop(portal) == 0

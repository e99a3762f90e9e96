"""Closing the terminal stops `make run` whole even where `make` leads the terminal's session
(issue 19, item 9, the breaking trial): `ssh -t host make run`, `script -c 'make run'`, a
terminal or IDE that runs the command itself. There the kernel's hangup signals the session
leader only -- make -- and GNU make, on SIGHUP, waits for its recipe to end before it dies:
runportal never heard of it, so make, runportal, web, worker and beat all stayed, the port
busy, the next `make run` refused. (An interactive shell leading the session passes SIGHUP on
to its jobs' process groups, which tests/system/test_running.py holds.) runportal now also
stops when the terminal it started on is gone."""

import contextlib
import os
import pty
import shutil
import signal
import socket
import sys
import threading

import pytest
from django.conf import settings

from tests.conftest import database_url
from tests.healthchecks.servers import closed_port
from tests.system.test_running import (
    MANAGE,
    alive,
    command_of,
    descendants,
    shell_env,
    wait_until,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
    pytest.mark.processes,
]


def drain(fd: int) -> None:
    """Read the terminal's output as a terminal emulator would, so nothing blocks on it."""
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


def test_closing_the_terminal_make_leads_stops_everything_and_frees_the_port(tmp_path):
    port = closed_port()
    makefile = tmp_path / "Makefile"
    makefile.write_text(  # make run's last step, as its recipe runs it
        f"run:\n\t{sys.executable} {MANAGE} runportal --addr 127.0.0.1:{port} --concurrency=1\n"
    )
    env = shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        LOG_LEVEL="warning",
        DATABASE_URL=database_url(),
        PORTAL_VAR_DIR=str(tmp_path / "var"),
    )
    make, terminal = pty.fork()  # make leads a new session on a new terminal
    if make == 0:
        os.chdir(settings.BASE_DIR)
        os.execvpe("make", ["make", "-f", str(makefile), "run"], env)  # noqa: S606
    threading.Thread(target=drain, args=(terminal,), daemon=True).start()
    everything = set()
    try:

        def beat_and_worker_up() -> bool:
            commands = [command_of(pid) for pid in descendants(make)]
            return any("beat" in c for c in commands) and any("worker" in c for c in commands)

        wait_until(beat_and_worker_up, 90)
        everything = descendants(make) | {make}
        os.close(terminal)  # the terminal closes: the window, the ssh connection
        wait_until(lambda: not [pid for pid in everything if alive(pid)], 30)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))  # free for the next make run
    finally:
        with contextlib.suppress(OSError):
            os.close(terminal)
        for pid in everything | descendants(make):  # each child leads a group of its own
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(make, 0)

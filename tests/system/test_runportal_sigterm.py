"""`manage.py runportal` stops web, worker and beat together on SIGTERM as on Ctrl-C and
SIGHUP (docs/decisions.md, "Embedded mode"): what a service manager or a container runtime
sends to the main process alone. It exits 0, no process of its tree is left, and the port is
free for the next `make run`."""

import contextlib
import os
import signal
import socket

import pytest

from tests.healthchecks.servers import closed_port
from tests.system.test_running import (
    alive,
    child_pid,
    descendants,
    start_embedded_runportal,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def test_sigterm_to_runportal_stops_everything_and_frees_the_port(tmp_path):
    port = closed_port()
    portal = start_embedded_runportal(port, tmp_path / "var")
    everything = set()
    try:
        child_pid(portal, "beat")
        child_pid(portal, "runserver")
        worker = child_pid(portal, "worker")
        wait_until(lambda: len(descendants(worker)) >= 1, 60)  # its pool process
        everything = descendants(portal.pid)
        os.kill(portal.pid, signal.SIGTERM)  # the main process only, not its group
        assert portal.wait(timeout=30) == 0
        wait_until(lambda: not [pid for pid in everything if alive(pid)], 15)
        with socket.socket() as sock:
            # As the next `make run`'s server binds it: only a listener left behind is in the
            # way, not the closed connections' TIME-WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
    finally:
        for pid in [portal.pid, *everything]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

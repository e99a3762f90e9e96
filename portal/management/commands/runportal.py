import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.celery import ensure_broker_folders

# How long the web server may take to answer before `make run` gives up (first start migrates
# nothing here, but a cold, busy machine imports Django slowly).
WEB_START_SECONDS = 60
# A child that ran this long before it died is started again at once; one that keeps dying
# sooner waits longer each time, up to RESTART_DELAY_MAX seconds.
STABLE_SECONDS = 60.0
RESTART_DELAY_MAX = 30.0
# Closing the terminal (SIGHUP) stops everything as Ctrl-C (SIGINT) does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def has_terminal() -> bool:
    """Whether this process still has its controlling terminal. A closing terminal signals
    only the leader of its session: where that is `make` (``ssh -t host make run``,
    ``script -c``), GNU make waits on SIGHUP for its recipe to end, and runportal -- its
    recipe -- would hear nothing. A terminal that is gone can no longer be opened."""
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
    except OSError:
        return False
    return True


def local_url(addr: str) -> str:
    """The address a local client reaches runserver's `addr` at (a wildcard is not one)."""
    host, _, port = addr.rpartition(":")
    if not host:
        host = "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)  # noqa: S104
    return f"http://{host}:{port}/health/"


def restart_delay(deaths_in_a_row: int) -> float:
    """Seconds before a dead child starts again: a second after a first death (a killed worker
    is back within seconds), doubling while it keeps dying young (a broken setting must not
    spin the machine), never more than RESTART_DELAY_MAX, so a fixed cause is picked up soon."""
    doublings = min(max(0, deaths_in_a_row - 1), 10)  # 2 ** 1024 would overflow a float
    return min(RESTART_DELAY_MAX, 2.0**doublings)


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


@dataclass
class Child:
    """One of the processes `make run` keeps running, and its record of deaths."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    deaths_in_a_row: int = 0
    start_at: float = 0.0  # when a dead one is due to start again

    def start(self) -> subprocess.Popen:
        # Each child leads its own process group: Ctrl-C reaches only this command, which then
        # stops the children in order, and a forced stop can take each whole group down.
        self.process = process = subprocess.Popen(  # noqa: S603
            self.command, cwd=settings.BASE_DIR, start_new_session=True
        )
        self.started_at = time.monotonic()
        return process

    def died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def bury(self) -> float:
        """Clear away what a dead child left (runserver's server process, Celery's pool) so
        its replacement finds the port free, and schedule that replacement; returns the
        delay."""
        assert self.process is not None
        kill_group(self.process.pid, signal.SIGKILL)
        lived = time.monotonic() - self.started_at
        self.deaths_in_a_row = 1 if lived >= STABLE_SECONDS else self.deaths_in_a_row + 1
        delay = restart_delay(self.deaths_in_a_row)
        self.start_at = time.monotonic() + delay
        self.process = None
        return delay


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(pgid, sig)


class Command(BaseCommand):
    help = (
        "Run the web server, a Celery worker and Celery beat together (the `make run` mode). "
        "A child that dies is started again; Ctrl-C, SIGTERM or closing the terminal (SIGHUP) "
        "stops all three."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Web address (host:port)")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker processes")

    def handle(self, *args, addr, concurrency, **options):
        # Beat keeps its schedule file in VAR_DIR in both modes; the embedded mode's settings
        # create the folder, the PostgreSQL + Redis mode needs it too.
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        ensure_broker_folders()
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        web = Child("web", [python, manage, "runserver", addr])
        # One worker for every queue: enough for the demo's few checks a second.
        worker = Child(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                "--queues=celery,dispatch,probes,automation",
            ],
        )
        beat = Child("beat", [python, "-m", "celery", "-A", "portal", "beat", "--loglevel=INFO"])
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        on_a_terminal = has_terminal()
        web_process = web.start()
        children = [web]
        # The demo's checks probe pages the web server serves: a worker started before it
        # listens finds them refusing and opens incidents for healthy services.
        exit_code = 0
        serving = self._wait_until_serving(local_url(addr), web_process, lambda: stopping)
        if not serving and not stopping:
            self._say(self.stderr, f"web did not answer on {local_url(addr)}; stopping")
            exit_code, stopping = 1, True
        if not stopping:
            worker.start()
            beat.start()
            children += [worker, beat]
            self._say(
                self.stdout,
                f"Portal on http://{addr}/ (worker and beat running). Ctrl-C stops.",
            )
        while not stopping:
            self._supervise(children)
            time.sleep(0.5)
            if on_a_terminal and not has_terminal():
                stopping = True  # the terminal closed, and no SIGHUP reached us: as if one had
        self._stop_all(children)
        sys.exit(exit_code)

    def _supervise(self, children: list[Child]) -> None:
        """Start again whatever died, rather than stop the rest with it: the demo goes on."""
        now = time.monotonic()
        for child in children:
            if child.process is not None and child.died():
                ended = how_it_ended(child.process.returncode)
                delay = child.bury()
                self._say(self.stderr, f"{child.name} {ended}; starting it again in {delay:g} s")
            elif child.process is None and now >= child.start_at:
                pid = child.start().pid
                self._say(self.stderr, f"{child.name} started again (pid {pid})")

    @staticmethod
    def _say(stream, message: str) -> None:
        # After SIGHUP the terminal is gone and writing to it fails: stopping goes on regardless.
        with contextlib.suppress(OSError):
            stream.write(message)

    @staticmethod
    def _wait_until_serving(url: str, web: subprocess.Popen, stopping) -> bool:
        """True once `url` answers at all (an error page is an answer: the server listens)."""
        deadline = time.monotonic() + WEB_START_SECONDS
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a proxy is not us
        while time.monotonic() < deadline and not stopping() and web.poll() is None:
            try:
                with direct.open(url, timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                time.sleep(0.3)
        return False

    def _stop_all(self, children: list[Child]) -> None:
        running = [(child.name, child.process) for child in children if child.process is not None]
        for name, process in running:
            if process.poll() is None:
                if name == "web":  # runserver's reloader would leave its server behind
                    kill_group(process.pid, signal.SIGTERM)
                else:  # Celery shuts its own pool down on SIGTERM (warm shutdown)
                    process.terminate()
        deadline = time.monotonic() + 10
        for _name, process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Whatever is left of its group (a pool process, a server) goes too.
            kill_group(process.pid, signal.SIGKILL)
        self._say(self.stdout, "Stopped web, worker and beat.")

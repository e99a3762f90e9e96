import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.celery import ensure_broker_folders

# How long the web server may take to answer before `make run` gives up (first start migrates
# nothing here, but a cold, busy machine imports Django slowly).
WEB_START_SECONDS = 60


def local_url(addr: str) -> str:
    """The address a local client reaches runserver's `addr` at (a wildcard is not one)."""
    host, _, port = addr.rpartition(":")
    if not host:
        host = "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)  # noqa: S104
    return f"http://{host}:{port}/health/"


class Command(BaseCommand):
    help = (
        "Run the web server, a Celery worker and Celery beat together (the `make run` mode). "
        "Ctrl-C stops all three."
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
        commands = {
            "web": [python, manage, "runserver", addr],
            # One worker for every queue: enough for the demo's few checks a second.
            "worker": [
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
            "beat": [python, "-m", "celery", "-A", "portal", "beat", "--loglevel=INFO"],
        }
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Each child leads its own process group: Ctrl-C reaches only this command, which then
        # stops the children in order, and a forced stop can take each whole group down.
        children = {"web": self._start(commands["web"])}
        # The demo's checks probe pages the web server serves: a worker started before it
        # listens finds them refusing and opens incidents for healthy services.
        exit_code = 0
        serving = self._wait_until_serving(local_url(addr), children["web"], lambda: stopping)
        if not serving and not stopping:
            self.stderr.write(f"web did not answer on {local_url(addr)}; stopping")
            exit_code, stopping = 1, True
        if not stopping:
            children["worker"] = self._start(commands["worker"])
            children["beat"] = self._start(commands["beat"])
            self.stdout.write(f"Portal on http://{addr}/ (worker and beat running). Ctrl-C stops.")
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                    exit_code, stopping = 1, True
            time.sleep(0.5)
        self._stop_all(children)
        sys.exit(exit_code)

    @staticmethod
    def _start(command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)  # noqa: S603

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

    def _stop_all(self, children: dict[str, subprocess.Popen]) -> None:
        for name, child in children.items():
            if child.poll() is None:
                if name == "web":  # runserver's reloader would leave its server child behind
                    os.killpg(child.pid, signal.SIGTERM)
                else:  # Celery shuts its own pool down on SIGTERM (warm shutdown)
                    child.terminate()
        deadline = time.monotonic() + 10
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.stdout.write("Stopped web, worker and beat.")

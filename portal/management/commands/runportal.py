import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.celery import ensure_broker_folders


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
                "--queues=celery,dispatch,probes",
            ],
            "beat": [python, "-m", "celery", "-A", "portal", "beat", "--loglevel=INFO"],
        }
        # Each child leads its own process group: Ctrl-C reaches only this command, which then
        # stops the children in order, and a forced stop can take each whole group down.
        children = {
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)  # noqa: S603
            for name, cmd in commands.items()
        }
        self.stdout.write(f"Portal on http://{addr}/ (worker and beat running). Ctrl-C stops.")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                    exit_code, stopping = 1, True
            time.sleep(0.5)
        self._stop_all(children)
        sys.exit(exit_code)

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

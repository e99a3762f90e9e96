"""Running the portal as the README says: `make run` on PostgreSQL and Redis from a fresh
checkout, commands typed in a second shell, the address it listens on, the number of
database connections a process may hold, and `make run` kept up (a child that dies started
again) and stopped whole (Ctrl-C, SIGHUP)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.models import CheckResult
from healthchecks.status import ErrorCode, Status
from portal import beat
from portal.management.commands.runportal import RESTART_DELAY_MAX, restart_delay
from portal.models import ApiToken
from tests.conftest import database_url
from tests.factories import make_check
from tests.healthchecks.servers import closed_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]
MANAGE = str(settings.BASE_DIR / "manage.py")


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"{url} did not answer")


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def shell_env(**values: str) -> dict:
    """A new shell's environment: PATH and HOME, nothing the test process set up."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **values}


def start_runportal(port: int, var: Path, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """`make run`'s last step on PostgreSQL and Redis, as a new shell starts it."""
    env = shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        PORTAL_VAR_DIR=str(var),
    )
    return subprocess.Popen(
        [sys.executable, MANAGE, "runportal", "--addr", f"127.0.0.1:{port}", "--concurrency=1"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def test_runportal_on_postgresql_and_redis_starts_in_a_fresh_checkout(tmp_path):
    """`make run` with DATABASE_URL and REDIS_URL stopped at once: beat could not create its
    schedule file in a var/ that only the embedded mode made. With Redis, beat writes no file
    (its last runs live in Redis beside its lease, portal.beat): the lease it holds says it
    runs, and stopping hands the lease over."""
    var = tmp_path / "fresh-checkout" / "var"  # does not exist yet
    port = closed_port()
    portal = start_runportal(port, var, stderr=subprocess.PIPE)
    lease = redis.Redis.from_url(settings.REDIS_URL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/", portal)
        deadline = time.monotonic() + 30
        while not lease.get(beat.LEASE_KEY) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert lease.get(beat.LEASE_KEY), "beat holds no lease"
        time.sleep(3)  # web, worker and beat all still running
        assert portal.poll() is None, portal.stderr.read()
    finally:
        assert stop(portal, signal.SIGINT) == 0
        assert lease.get(beat.LEASE_KEY) is None  # released: a standby would take it at once
        lease.close()


def child_commands(pid: int) -> list[str]:
    """The command lines of a process's children (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    commands = []
    for child in children:
        try:
            commands.append(
                Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
    return commands


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=0.5)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def test_runportal_starts_the_worker_only_once_the_web_answers(tmp_path):
    """The demo's checks probe targets the web server serves: a worker that started before
    it listened found them refusing and opened incidents for healthy services (embedded
    mode, a stranger's trial). No worker runs before the web answers, and a check of the
    portal's own /health/, due at once, finds it answering on its very first probe."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/health/"
    check = make_check(target=url, interval=30, timeout=2, next_due_at=None)
    portal = start_runportal(port, tmp_path / "var")
    try:
        deadline = time.monotonic() + 60
        while not answers(url):
            assert time.monotonic() < deadline, "the web did not answer within 60 s"
            assert portal.poll() is None
            workers = [c for c in child_commands(portal.pid) if "celery" in c and "worker" in c]
            assert not workers, "a worker started before the web answered"
            time.sleep(0.05)
        deadline = time.monotonic() + 90
        while not CheckResult.objects.filter(health_check=check).exists():
            assert time.monotonic() < deadline, "no result within 90 s"
            assert portal.poll() is None
            time.sleep(0.5)
        first = CheckResult.objects.filter(health_check=check).order_by("at").first()
        assert (first.status, first.error_code) == (Status.HEALTHY, ErrorCode.NONE)
    finally:
        assert stop(portal, signal.SIGINT) == 0


def test_a_readme_command_in_a_second_shell_sees_the_running_portal(tmp_path):
    """After `make run` (here: its first step, which writes .env), `manage.py
    create_api_token` typed in a new shell -- no DEBUG, no DATABASE_URL in its environment --
    works, stores the token where the portal runs, and prints only the secret on stdout."""
    env_file = tmp_path / ".env"
    first = shell_env(
        PORTAL_ENV_FILE=str(env_file),
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
    )
    subprocess.run([sys.executable, "-m", "portal.devenv"], env=first, check=True)
    second = shell_env(PORTAL_ENV_FILE=str(env_file))
    made = subprocess.run(
        [sys.executable, MANAGE, "create_api_token", "ci", "--scopes", "registry:read"],
        cwd=tmp_path,
        env=second,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("svp_") and "\n" not in secret
    assert ApiToken.objects.filter(name="ci").exists()


def test_a_command_that_fails_says_why_on_stderr_and_exits_non_zero(tmp_path):
    no_env_file = shell_env(PORTAL_ENV_FILE="")
    failed = subprocess.run(
        [sys.executable, MANAGE, "create_api_token", "ci", "--scopes", "registry:read"],
        cwd=tmp_path,
        env=no_env_file,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("manage.py: SECRET_KEY (or SECRET_KEY_FILE) must be set")
    assert "Traceback" not in failed.stderr


def test_make_run_moves_the_web_server_and_the_demo_targets_together():
    plan = subprocess.run(
        ["make", "-n", "run", "PORT=9123"], cwd=settings.BASE_DIR, capture_output=True, text=True
    ).stdout
    assert "load_demo --base-url http://127.0.0.1:9123" in plan
    assert "runportal --addr 127.0.0.1:9123" in plan
    plan = subprocess.run(
        ["make", "-n", "run", "ADDR=0.0.0.0:9000"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
    ).stdout
    # Listening everywhere, the demo's checks reach it on loopback (0.0.0.0 is refused).
    assert "load_demo --base-url http://127.0.0.1:9000" in plan
    assert "runportal --addr 0.0.0.0:9000" in plan


def database_connections(application: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application]
        )
        return cursor.fetchone()[0]


def test_a_threaded_server_holds_at_most_its_pool_of_connections(make_token):
    """runserver answers each request on a thread of its own; with persistent connections
    every thread kept one and 250 requests ran PostgreSQL out of them. The pool bounds a
    process at DB_POOL_SIZE, and requests beyond it wait their turn."""
    application = "portal-pool-test"
    port = closed_port()
    env = shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        DB_POOL_SIZE="4",
        PGAPPNAME=application,
        LOG_LEVEL="warning",
    )
    server = subprocess.Popen(
        [sys.executable, MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    secret = make_token(["registry:read"]).secret
    peak, done = [0], threading.Event()

    def watch():
        try:
            while not done.is_set():
                peak[0] = max(peak[0], database_connections(application))
                time.sleep(0.02)
        finally:
            connection.close()  # this thread's own

    def call(i: int) -> int:
        path = "/api/services" if i % 2 else "/health/services"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {secret}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/", server)
        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(call, range(250)))
        done.set()
        watcher.join()
        assert statuses == [200] * 250
        assert 1 <= peak[0] <= 4, peak[0]
    finally:
        done.set()
        stop(server)
        connection.close()


def test_the_env_file_make_run_writes_keeps_what_people_wrote(tmp_path):
    from portal import devenv

    env_file = tmp_path / ".env"
    env_file.write_text("# mine\nHEALTH_CHECK_INTERVAL=5\n")
    devenv.update(env_file, {"DATABASE_URL": "postgres://a@b/c"})
    first = env_file.read_text()
    key = next(line for line in first.splitlines() if line.startswith("SECRET_KEY="))
    assert "# mine\nHEALTH_CHECK_INTERVAL=5\n" in first and "DATABASE_URL=postgres://a@b/c" in first
    devenv.update(env_file, {})  # embedded this time: the block follows, the key stays
    second = env_file.read_text()
    assert key in second and "DATABASE_URL=postgres" not in second
    assert second.count("SECRET_KEY=") == 1 and second.count("DEBUG=") == 1
    assert oct(Path(env_file).stat().st_mode & 0o777) == "0o600"


def test_expected_503s_are_not_logged_as_errors_on_the_development_console(tmp_path):
    """A readiness answer of 503 and the demo targets failing on purpose are answers, not
    faults: the console shows them once, in the access log, and no error line."""
    from django.utils import timezone

    from healthchecks.engine import recording
    from healthchecks.probes import ProbeOutcome
    from healthchecks.status import Status
    from tests.factories import ServiceFactory, make_check

    check = make_check(ServiceFactory(name="down-one"), name="http")
    now = timezone.now()
    outcome = ProbeOutcome(Status.UNHEALTHY, errors=["refused"])
    recording.record([recording.Result(check.pk, now, now, outcome)])
    port = closed_port()
    log = tmp_path / "console.log"
    env = shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        LOG_FORMAT="console",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
    )
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health/", server)
            for path in ("/health/service/down-one", "/demo/down", "/demo/flaky"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
                except urllib.error.HTTPError as error:
                    assert error.code == 503
        finally:
            stop(server)
            connection.close()
    lines = log.read_text().splitlines()
    assert [line for line in lines if "error" in line.lower()] == []
    access = [line for line in lines if "portal.access" in line and "status=503" in line]
    assert any("path=/health/service/down-one" in line for line in access), lines


def test_make_run_says_what_to_do_when_its_database_does_not_exist(tmp_path):
    env_file = tmp_path / ".env"
    url = database_url().rsplit("/", 1)[0] + "/no_such_portal_database"
    first = shell_env(PORTAL_ENV_FILE=str(env_file), DATABASE_URL=url)
    done = subprocess.run(
        [sys.executable, "-m", "portal.devenv"], env=first, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "'no_such_portal_database', which does not exist" in done.stderr
    assert "createdb" in done.stderr and "Traceback" not in done.stderr
    assert not env_file.exists()


def start_embedded_runportal(port: int, var: Path) -> subprocess.Popen:
    """`make run`'s last step with the embedded mode's broker (no REDIS_URL: the filesystem
    broker under ``var``), on the test database so the demo's tables exist."""
    env = shell_env(
        PORTAL_ENV_FILE="",
        DEBUG="true",
        LOG_LEVEL="warning",
        DATABASE_URL=database_url(),
        PORTAL_VAR_DIR=str(var),
    )
    return subprocess.Popen(
        [sys.executable, MANAGE, "runportal", "--addr", f"127.0.0.1:{port}", "--concurrency=1"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def child_pid(portal: subprocess.Popen, word: str, seconds: float = 60) -> int:
    """The pid of runportal's child whose command line holds ``word`` (worker, beat,
    runserver), once there is one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert portal.poll() is None, f"runportal exited with {portal.returncode}"
        for pid in child_pids(portal.pid):
            if word in command_of(pid):
                return pid
        time.sleep(0.1)
    pytest.fail(f"runportal has no {word} child")


def child_pids(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid: int) -> set[int]:
    found = set()
    for child in child_pids(pid):
        found |= {child} | descendants(child)
    return found


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.2)


def results_after(check, moment) -> bool:
    return CheckResult.objects.filter(health_check=check, at__gt=moment).exists()


@hypothesis_settings(max_examples=200)
@given(deaths=st.integers(min_value=0, max_value=10_000))
def test_a_dead_child_waits_at_most_half_a_minute_however_often_it_died(deaths):
    """The promise "a killed worker is replaced within a minute" holds for a child that
    keeps dying too: the wait grows with its deaths in a row but stops at 30 s."""
    assert 1 <= restart_delay(deaths) <= RESTART_DELAY_MAX <= 30
    assert restart_delay(deaths) <= restart_delay(deaths + 1)


def test_runportal_starts_a_killed_worker_again_while_the_web_goes_on_answering(tmp_path):
    """Embedded mode: a worker that died took web and beat down with it. Killed with SIGKILL,
    it is replaced (its pool cleared away) and the check's results go on within a minute;
    the web answers every request meanwhile."""
    from django.utils import timezone

    port = closed_port()
    url = f"http://127.0.0.1:{port}/health/"
    check = make_check(target=url, interval=2, timeout=1)
    portal = start_embedded_runportal(port, tmp_path / "var")
    try:
        worker = child_pid(portal, "worker")
        wait_until(lambda: results_after(check, timezone.now() - timedelta(hours=1)), 90)
        pool = descendants(worker)
        os.kill(worker, signal.SIGKILL)
        killed, killed_at = time.monotonic(), timezone.now()
        unanswered = 0
        while not results_after(check, killed_at):
            assert time.monotonic() - killed < 60, "no result within a minute of the kill"
            unanswered += not answers(url)
            time.sleep(0.2)
        print(f"results again {time.monotonic() - killed:.1f} s after the kill")
        assert unanswered == 0
        assert child_pid(portal, "worker") != worker
        assert not [pid for pid in pool if alive(pid)], "the dead worker's pool is left"
    finally:
        assert stop(portal, signal.SIGINT) == 0


def test_runportal_starts_a_killed_web_server_again_on_its_port(tmp_path):
    """runserver's reloader killed leaves its server holding the port: it goes too, and a
    new web server answers on the same port within a minute."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/health/"
    portal = start_embedded_runportal(port, tmp_path / "var")
    try:
        child_pid(portal, "worker")  # started once the web answered: runportal supervises
        web = child_pid(portal, "runserver")
        os.kill(web, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: child_pid(portal, "runserver") != web and answers(url), 60)
        print(f"web answered again {time.monotonic() - killed:.1f} s after the kill")
    finally:
        assert stop(portal, signal.SIGINT) == 0


def test_sighup_to_runportals_process_group_stops_everything_and_frees_the_port(tmp_path):
    """Closing the terminal left web, worker and beat running, and the next `make run` found
    its port busy. SIGHUP to the group (what a closing terminal sends) stops all of them."""
    port = closed_port()
    portal = start_embedded_runportal(port, tmp_path / "var")
    everything = set()
    try:
        child_pid(portal, "beat")
        worker = child_pid(portal, "worker")
        wait_until(lambda: len(descendants(worker)) >= 1, 60)  # its pool process
        everything = descendants(portal.pid)
        os.killpg(portal.pid, signal.SIGHUP)
        assert portal.wait(timeout=30) == 0
        wait_until(lambda: not [pid for pid in everything if alive(pid)], 15)
        with socket.socket() as sock:
            # Free again for the next make run, whose server binds as this does (its old
            # connections may linger in TIME_WAIT, which does not stop it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    finally:
        for pid in [portal.pid, *everything]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

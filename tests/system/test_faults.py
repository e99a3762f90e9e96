"""Faults against real processes (gunicorn as the image runs it, PostgreSQL behind a TCP
proxy, Redis): with the database black-holed -- its open connections silent, mid-statement
too -- liveness answers at once, readiness 503 within 2 s and every other request a 503 within
5 s; after 40 s refused every worker serves again within 5 s of the database coming back; with
Redis gone API reads and pages go on while ``backend`` reports itself degraded."""

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection

from portal import tokens
from portal.auth import system_actor
from tests.factories import ServiceFactory
from tests.healthchecks.servers import closed_port, wait_for
from tests.system.test_database_outage import start_portal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgresql, pytest.mark.serial]


class SwitchableProxy:
    """A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones
    refused) and restored on the same port -- the database going away and coming back -- or
    black-holed: every connection, open or new, stays up and nothing more crosses it either
    way (a network dropping packets, a frozen host) until it flows again."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream, self.port = upstream, closed_port()
        self.links: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.flowing = threading.Event()
        self.flowing.set()
        self.up()

    def up(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self) -> None:
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for link in self.links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()
        self.links.clear()

    def blackhole(self) -> None:
        self.flowing.clear()

    def flow(self) -> None:
        self.flowing.set()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the database is "down"
            self.links.append(client)
            threading.Thread(target=self._link, args=(listener, client), daemon=True).start()

    def _link(self, listener: socket.socket, client: socket.socket) -> None:
        self.flowing.wait()  # black-holed: a new connection meets the same silence
        if listener.fileno() == -1:
            return  # cut meanwhile
        server = socket.create_connection(self.upstream)
        self.links.append(server)
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()  # held, not lost: a network that heals delivers it
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()


def status_of(url: str, headers: dict | None = None, opener=None) -> tuple[int, float]:
    status, _, _, took = answer(url, headers, opener)
    return status, took


def answer(url: str, headers: dict | None = None, opener=None) -> tuple[int, bytes, dict, float]:
    """(status, body, headers, seconds taken); a hung portal fails the test after 15 s."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=15) as response:
            status, body, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, body, head = error.code, error.read(), dict(error.headers)
    return status, body, head, time.monotonic() - started


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def log_in(base: str, username: str, password: str):
    """A browser (an opener with cookies) logged in through the login form."""
    cookies = CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    assert status_of(f"{base}/accounts/login/", opener=browser)[0] == 200
    csrf = next(c.value for c in cookies if c.name == "csrftoken")
    form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    login = urllib.request.Request(
        f"{base}/accounts/login/", data=form.encode(), headers={"Referer": base + "/"}
    )
    with browser.open(login, timeout=20) as landed:
        assert landed.status == 200 and landed.url.rstrip("/") == base
    return browser


def workers_of(server: subprocess.Popen) -> set[int]:
    """The gunicorn master's worker processes."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def answered(access_log: Path) -> list[tuple[int, int, str]]:
    """(worker pid, status, path) of each answer so far (start_portal's access log)."""
    rows = [line.split(" ", 2) for line in access_log.read_text().splitlines()]
    return [(int(pid.strip("<>")), int(status), path) for pid, status, path in rows]


def until_every_worker_serves(
    server, base: str, access_log: Path, api: dict, limit: float = 5.0
) -> float:
    """Seconds until each worker has answered an API read with 200 (reads sent four at a
    time, so that every worker gets some); the test fails past ``limit`` (the promise: 5 s
    after the database is back)."""
    workers, seen, started = workers_of(server), len(answered(access_log)), time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        while True:
            list(pool.map(lambda _: status_of(f"{base}/api/services", api), range(4)))
            served = {p for p, status, path in answered(access_log)[seen:] if status == 200}
            took = time.monotonic() - started
            if workers <= served:
                return took
            assert took < limit, f"workers {workers - served} not serving after {took:.1f} s"


def outage_answer(base: str, path: str, headers=None, opener=None) -> float:
    """A read during the outage: a 503 in the error shape (text for a page), with
    Retry-After, within 5 s. Returns the seconds it took."""
    status, body, head, took = answer(f"{base}{path}", headers, opener)
    assert status == 503 and head["Retry-After"] == "5", (path, status, body[:300])
    if opener is None:
        assert json.loads(body)["error"]["code"] == "database_unavailable", body
    assert took < 5.0, (path, took)
    return took


@pytest.fixture
def portal_behind_proxy(tmp_path):
    """A service, a reader's token, a person; gunicorn on a proxy before PostgreSQL, its
    access log naming the worker of each answer."""
    ServiceFactory(name="payments")
    token = tokens.issue_token("reader", ["registry:read"], issuer=system_actor("test"))
    User.objects.create_user("vera", password="a long pass phrase")
    db = connection.settings_dict
    proxy = SwitchableProxy((db["HOST"], int(db["PORT"])))
    access_log = tmp_path / "access.log"
    server, base = start_portal(proxy.port, database=db["NAME"], access_log=access_log)
    api = {"Authorization": f"Bearer {token.secret}"}
    try:
        # Each worker holds connections before the outage (starting up is no promise of 5 s:
        # on a busy machine it takes longer).
        until_every_worker_serves(server, base, access_log, api, limit=60)
        yield proxy, server, base, access_log, api
    finally:
        stop(server)
        proxy.flow()
        proxy.down()


READS = ["/api/services", "/api/services/payments", "/health/services", "/health/service/payments"]


def test_with_its_database_black_holed_the_portal_answers_503_within_5_seconds(
    portal_behind_proxy,
):
    proxy, server, base, access_log, api = portal_behind_proxy
    browser = log_in(base, "vera", "a long pass phrase")
    proxy.blackhole()  # the pooled connections go silent, and so does every new one
    with ThreadPoolExecutor(3) as pool:
        hung = [pool.submit(outage_answer, base, "/api/services", api) for _ in range(3)]
        time.sleep(0.3)  # three reads now wait on silent connections
        for headers, opener in (({}, None), (api, None), ({}, browser)):  # token, session
            status, _, _, took = answer(f"{base}/health/", headers, opener)
            assert status == 200 and took < 0.5, ("liveness", headers, opener, status, took)
        status, body, _, took = answer(f"{base}/health/service/backend")
        assert status == 503 and took < 2.0 and b"database: " in body, ("readiness", took)
        took = [outage_answer(base, path, api) for path in READS]
        took.append(outage_answer(base, "/", opener=browser))  # a page, logged in
        took += [future.result() for future in hung]
    print(f"answers during the black hole: max {max(took):.2f} s")
    proxy.flow()
    back = until_every_worker_serves(server, base, access_log, api)
    print(f"every worker serves again after {back:.2f} s")


def test_a_request_whose_answer_the_network_swallows_answers_503_within_5_seconds(
    portal_behind_proxy,
):
    """The request is mid-statement when the network goes silent: its read waits on a lock
    (held here), the proxy black-holes, the lock is released -- the answer exists and never
    arrives."""
    proxy, _, base, _, api = portal_behind_proxy
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], dbname=db["NAME"], user=db["USER"]
    ) as lock:
        lock.execute("LOCK TABLE services_service IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(1) as pool:
            read = pool.submit(outage_answer, base, "/api/services", api)
            assert wait_for(lambda: waiting_on_a_lock(lock) > 0, timeout=3.0)
            proxy.blackhole()
            lock.commit()  # the read's answer is sent now, into the black hole
            status, _, _, took = answer(f"{base}/health/")
            assert status == 200 and took < 0.5, ("liveness", status, took)
            print(f"the swallowed read answered 503 after {read.result():.2f} s")


def waiting_on_a_lock(conn) -> int:
    """Sessions of this database waiting for a lock (the query column may still show the
    session's previous statement: not a filter)."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database() AND backend_type = 'client backend'"
    ).fetchone()[0]


def test_after_40_seconds_refused_every_worker_serves_again_within_5_seconds(
    portal_behind_proxy,
):
    proxy, server, base, access_log, api = portal_behind_proxy
    proxy.down()
    took, back = [], time.monotonic() + 40
    with ThreadPoolExecutor(4) as pool:
        while time.monotonic() < back:  # traffic throughout, as pipelines and probes send
            status, ready = status_of(f"{base}/health/service/backend")
            assert status == 503 and ready < 2.0, ("readiness", status, ready)
            took += pool.map(lambda _: outage_answer(base, "/api/services", api), range(4))
    print(f"{len(took)} reads during the refusal: 503 after at most {max(took):.2f} s")
    proxy.up()
    back = until_every_worker_serves(server, base, access_log, api)
    print(f"every worker serves again after {back:.2f} s")
    assert [status_of(f"{base}/api/services", api)[0] for _ in range(8)] == [200] * 8
    assert status_of(f"{base}/health/service/backend")[0] == 200


def test_with_redis_unreachable_api_reads_and_pages_go_on_and_backend_is_degraded(tmp_path):
    ServiceFactory(name="payments")
    token = tokens.issue_token("reader", ["registry:read"], issuer=system_actor("test"))
    User.objects.create_user("vera", password="a long pass phrase")
    db = connection.settings_dict
    nowhere = f"redis://127.0.0.1:{closed_port()}/0"
    log = (tmp_path / "portal.log").open("w")
    server, base = start_portal(int(db["PORT"]), database=db["NAME"], redis_url=nowhere, log=log)
    try:
        api = {"Authorization": f"Bearer {token.secret}"}
        assert status_of(f"{base}/api/services", api)[0] == 200
        assert status_of(f"{base}/api/services/payments", api)[0] == 200
        browser = log_in(base, "vera", "a long pass phrase")
        for page in ("/", "/services/payments/", "/map/", "/maintenance/"):
            assert status_of(f"{base}{page}", opener=browser)[0] == 200, page
        with urllib.request.urlopen(f"{base}/health/service/backend", timeout=20) as ready:
            body = json.loads(ready.read())
        assert ready.status == 200 and body["status"] == "degraded"
        assert any("redis" in e for e in body["errors"])
    except Exception:
        print((tmp_path / "portal.log").read_text()[-6000:])  # the portal's side of it
        raise
    finally:
        stop(server)

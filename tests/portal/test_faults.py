"""Faults against real processes (gunicorn, PostgreSQL, Redis): the portal comes back by
itself within seconds of its database coming back, and with Redis gone its API reads and
pages go on while ``backend`` reports itself degraded."""

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import connection

from portal import tokens
from portal.auth import system_actor
from tests.factories import ServiceFactory
from tests.healthchecks.servers import closed_port
from tests.portal.test_database_outage import start_portal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgresql]


class SwitchableProxy:
    """A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones
    refused) and restored on the same port: the database going away and coming back."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream, self.port = upstream, closed_port()
        self.links: list[socket.socket] = []
        self.listener: socket.socket | None = None
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

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the database is "down"
            server = socket.create_connection(self.upstream)
            self.links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()


def status_of(url: str, headers: dict | None = None, opener=None) -> tuple[int, float]:
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=20) as response:
            response.read()
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def test_the_portal_serves_again_within_5_seconds_of_its_database_coming_back():
    ServiceFactory(name="payments")
    token = tokens.issue_token("reader", ["registry:read"], issuer=system_actor("test"))
    db = connection.settings_dict
    proxy = SwitchableProxy((db["HOST"], int(db["PORT"])))
    server, base = start_portal(proxy.port, database=db["NAME"])
    api = {"Authorization": f"Bearer {token.secret}"}
    try:
        assert status_of(f"{base}/api/services", api)[0] == 200
        proxy.down()
        for _ in range(4):  # whichever worker answers
            code, took = status_of(f"{base}/health/service/backend")
            assert code == 503 and took < 2.0, (code, took)
        assert status_of(f"{base}/api/services", api)[0] == 503
        proxy.up()
        back = time.monotonic()
        while status_of(f"{base}/api/services", api)[0] != 200:
            assert time.monotonic() - back < 5.0, "not serving 5 s after the database came back"
            time.sleep(0.1)
        # Every worker, not only the first to answer: a few requests in a row all succeed.
        assert [status_of(f"{base}/api/services", api)[0] for _ in range(6)] == [200] * 6
        assert status_of(f"{base}/health/service/backend")[0] == 200
    finally:
        stop(server)
        proxy.down()


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
        cookies = CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        assert status_of(f"{base}/accounts/login/", opener=browser)[0] == 200
        csrf = next(c.value for c in cookies if c.name == "csrftoken")
        form = urlencode(
            {"username": "vera", "password": "a long pass phrase", "csrfmiddlewaretoken": csrf}
        )
        login = urllib.request.Request(
            f"{base}/accounts/login/", data=form.encode(), headers={"Referer": base + "/"}
        )
        with browser.open(login, timeout=20) as landed:
            assert landed.status == 200 and landed.url.rstrip("/") == base
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

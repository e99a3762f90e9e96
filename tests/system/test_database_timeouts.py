"""Round trips to PostgreSQL end on the client's side (portal.database): through a proxy that
goes silent, a statement outside any request (a task, a command) is left after the statement
timeout plus DB_READ_TIMEOUT, and `migrate` waits as long as it takes. (Requests, through a
real gunicorn: tests/system/test_faults.py.)"""

import threading
import time

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.db.models.signals import pre_migrate
from django.test import override_settings

from portal import database
from portal.database.base import DatabaseWrapper
from tests.system.test_faults import SwitchableProxy

pytestmark = [pytest.mark.django_db, pytest.mark.postgresql, pytest.mark.serial]


@pytest.fixture
def proxy():
    db = connection.settings_dict
    proxy = SwitchableProxy((db["HOST"], int(db["PORT"])))
    yield proxy
    proxy.flow()
    proxy.down()


@pytest.fixture
def proxied(proxy):
    """The portal's own database engine and pool, reaching PostgreSQL through the proxy."""
    wrapper = DatabaseWrapper(
        {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": str(proxy.port)}, "proxied"
    )
    yield wrapper
    wrapper.close()
    wrapper.close_pool()


@override_settings(DB_STATEMENT_TIMEOUT=1.0, DB_READ_TIMEOUT=0.5)
def test_outside_a_request_a_silent_server_is_left_after_both_timeouts(proxy, proxied):
    with proxied.cursor() as cursor:
        cursor.execute("SELECT 1")
    threading.Timer(0.2, proxy.blackhole).start()  # while the server sleeps
    started = time.monotonic()
    silent = pytest.raises(OperationalError, match=r"did not answer within 1\.5 s")
    with silent, proxied.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.4)")  # its answer never crosses
    took = time.monotonic() - started
    assert 1.5 <= took < 3.0, took


def test_migrate_waits_for_the_server_as_long_as_it_takes():
    during = []

    def seen(**kwargs):
        during.append(database.round_trip_limit())

    pre_migrate.connect(seen, dispatch_uid="test-seen")  # after the portal's own receiver
    try:
        call_command("migrate", verbosity=0)
    finally:
        pre_migrate.disconnect(dispatch_uid="test-seen")
    assert during and set(during) == {None}  # no client-side bound while it migrates
    assert database.round_trip_limit() == 30.0 + 4.0  # and back afterwards (the defaults)

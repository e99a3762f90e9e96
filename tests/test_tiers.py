"""The fast tier as `make check` runs it (tests/conftest.py, tests/parallel.py): each parallel
worker on a Redis database of its own, and passwords hashed quickly outside the system tier."""

import os

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

from tests.parallel import worker_redis_url


def test_each_worker_takes_the_redis_database_below_the_suites_by_its_number():
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/14"
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw2") == "redis://127.0.0.1:6379/12"
    assert worker_redis_url("redis://:pw@redis:6379/10", "gw1") == "redis://:pw@redis:6379/8"
    with pytest.raises(RuntimeError, match="leaves no database below it"):
        worker_redis_url("redis://127.0.0.1:6379/1", "gw0")


@pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="runs under pytest-xdist")
def test_this_worker_runs_on_its_own_redis_database():
    worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    index = int(settings.REDIS_URL.rsplit("/", 1)[1])
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    suite = int(os.environ["REDIS_URL_OF_THE_SUITE"].rsplit("/", 1)[1])
    assert index == suite - 1 - worker


def test_outside_the_system_tier_passwords_are_hashed_quickly_and_pbkdf2_still_reads():
    assert make_password("pw").startswith("md5$")
    stored = PBKDF2PasswordHasher().encode("pw", "salt", iterations=1000)  # as production makes
    assert check_password("pw", stored) and not check_password("other", stored)

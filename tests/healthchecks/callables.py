"""Callables for the python-kind probe tests (allowed by a settings override in the tests)."""

import asyncio
import time
from datetime import UTC, datetime
from os import getcwd  # noqa: F401 -- imported, not defined here: must be refused

from healthchecks.status import Status

NOT_CALLABLE = 42


def fine() -> bool:
    return True


def broken() -> bool:
    return False


def degraded_word() -> str:
    return "Degraded"


def maintenance() -> Status:
    return Status.MAINTENANCE


def report() -> dict:
    return {
        "status": "unhealthy",
        "errors": ["queue is 9000 deep"],
        "warnings": ["consumer lag rising"],
        "details": {"queue": "orders", "since": datetime(2025, 6, 1, 12, tzinfo=UTC)},
        "metrics": {"depth": 9000},
    }


def strange() -> int:
    return 42


def raises() -> bool:
    raise RuntimeError("disk /var is read-only")


def slow() -> bool:
    time.sleep(1.0)
    return True


async def async_fine() -> str:
    await asyncio.sleep(0)
    return "pass"


async def async_slow() -> bool:
    await asyncio.sleep(5)
    return True


def _private() -> bool:
    return True


async def stall_the_loop() -> bool:
    """A check that blocks its worker's event loop for 1.5 s (test only): what a starved
    checker looks like to the other probes of its batch."""
    time.sleep(1.5)
    return True

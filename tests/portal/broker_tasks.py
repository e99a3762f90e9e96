"""A task for hammering the embedded broker (tests/system/test_embedded_broker.py), and the
producer processes that send it: ``python -m tests.portal.broker_tasks <first> <count>
<padding bytes>``, run with the embedded mode's environment (no REDIS_URL)."""

import os
import sys
import uuid
from pathlib import Path

from celery import shared_task

TASK = "tests.portal.broker_tasks.echo"


@shared_task(ignore_result=True)
def echo(number: int, padding: str, seen: str) -> None:
    """One file per delivery, so the test counts messages lost and delivered twice."""
    Path(seen, f"{number}.{os.getpid()}.{uuid.uuid4().hex}").touch()


def produce(first: int, count: int, padding: int, seen: str, queue: str) -> None:
    import django

    django.setup()
    from portal.celery import app

    for number in range(first, first + count):
        app.send_task(TASK, args=[number, "x" * padding, seen], queue=queue)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    first, count, padding = (int(value) for value in sys.argv[1:4])
    produce(first, count, padding, seen=sys.argv[4], queue=sys.argv[5])

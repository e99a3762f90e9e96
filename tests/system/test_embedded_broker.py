"""The embedded mode's broker (portal.broker) under real Celery workers: kombu's filesystem
transport let a consumer read a message file its producer had not finished writing, and the
`make run` demo's worker died on JSONDecodeError after 12 minutes (kombu issue 1551)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import kombu
import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal import broker

PRODUCERS, PER_PRODUCER, PADDING = 4, 250, 100_000
CONSUMERS = 3
QUEUE = "hammer"


def embedded_env(var: Path) -> dict:
    """`make run` without DATABASE_URL and REDIS_URL: SQLite and the broker under ``var``."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "LOG_LEVEL": "warning",
        "PORTAL_VAR_DIR": str(var),
    }


def start_consumer(var: Path, log: Path) -> subprocess.Popen:
    """A real worker on the embedded broker. A large prefetch keeps its consumer listing the
    folder back to back (no pause while its pool is busy), which is what the race needs."""
    command = [
        *(sys.executable, "-m", "celery", "-A", "portal", "worker"),
        *("--include=tests.portal.broker_tasks", f"--queues={QUEUE}", "--concurrency=2"),
        *("--prefetch-multiplier=16", "--without-gossip", "--without-mingle"),
        *("--without-heartbeat", "--loglevel=WARNING"),
    ]
    with log.open("w") as sink:
        return subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=embedded_env(var),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_producer(index: int, var: Path, seen: Path) -> subprocess.Popen:
    """A process sending its own range of numbers, as beat, web and worker all publish."""
    first = str(index * PER_PRODUCER)
    arguments = [first, str(PER_PRODUCER), str(PADDING), str(seen), QUEUE]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.portal.broker_tasks", *arguments],
        cwd=settings.BASE_DIR,
        env=embedded_env(var),
    )


def wait_for_deliveries(seen: Path, total: int, workers: list, logs: list) -> Counter:
    deadline = time.monotonic() + 180
    while len(os.listdir(seen)) < total and time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), [log.read_text() for log in logs]
        time.sleep(0.5)
    time.sleep(1)  # anything delivered twice shows up too
    return Counter(int(name.partition(".")[0]) for name in os.listdir(seen))


@pytest.mark.worker
def test_it_delivers_every_message_once_and_whole_to_several_workers(tmp_path):
    """4 producers send 250 messages of 100 kB each to 3 workers at once: every message is
    run exactly once, no worker dies, none logs an error."""
    var, seen = tmp_path / "var", tmp_path / "seen"
    for folder in ("broker", "broker-control", "results"):  # runportal makes them in make run
        (var / folder).mkdir(parents=True)
    seen.mkdir()
    logs = [tmp_path / f"worker-{i}.log" for i in range(CONSUMERS)]
    workers = [start_consumer(var, log) for log in logs]
    try:
        producers = [start_producer(i, var, seen) for i in range(PRODUCERS)]
        assert [producer.wait(timeout=300) for producer in producers] == [0] * PRODUCERS
        total = PRODUCERS * PER_PRODUCER
        deliveries = wait_for_deliveries(seen, total, workers, logs)
        assert sorted(deliveries) == list(range(total)), f"lost: {total - len(deliveries)}"
        assert set(deliveries.values()) == {1}, "some were delivered twice"
        assert all(w.poll() is None for w in workers)
        errors = [line for log in logs for line in log.read_text().splitlines() if "Error" in line]
        assert errors == []
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):  # a worker that died, pool and all
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def connection(folder: Path) -> kombu.Connection:
    """What portal.settings gives Celery in the embedded mode, as kombu sees it."""
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    options["control_folder"] = str(folder / "control")
    return kombu.Connection(
        "filesystem://", transport="portal.broker:Transport", transport_options=options
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One broker folder for the module: kombu keeps bindings per process, not per folder."""
    return tmp_path_factory.mktemp("broker")


@hypothesis_settings(max_examples=50, deadline=None)
@given(bodies=st.lists(JSON, min_size=1, max_size=8))
def test_it_hands_out_every_body_as_sent_and_in_order(folder, bodies):
    with connection(folder) as conn:
        queue = conn.SimpleQueue("round-trip", serializer="json")
        for body in bodies:
            queue.put(body)
        received = []
        for _ in bodies:
            message = queue.get(timeout=1)
            received.append(message.payload)
            message.ack()
        assert received == bodies
        assert [n for n in os.listdir(folder) if n.endswith((".msg", ".part"))] == []


def test_a_damaged_message_file_is_set_aside_and_the_next_one_delivered(folder):
    """A file that is not JSON (a crash before it reached the disk) no longer stops the
    consumer: it is kept in broken/ and the queue goes on."""
    with connection(folder) as conn:
        queue = conn.SimpleQueue("damaged", serializer="json")
        (folder / broker.message_name("damaged")).write_bytes(b'{"body": "eyJ')
        queue.put({"after": "the damaged one"})
        message = queue.get(timeout=1)
        assert message.payload == {"after": "the damaged one"}
        assert len(os.listdir(folder / broker.BROKEN)) == 1

"""The embedded mode's Celery broker: kombu's filesystem transport, made safe for several
processes at once (web, worker and beat all publish; the worker consumes).

kombu's own transport creates a message file and writes it afterwards, so a consumer listing
the folder in between reads an empty or half-written file and dies on ``JSONDecodeError``
(kombu issue 1551: the `make run` demo's worker died after 12 minutes). It also claims a
file by moving it to the system's temporary folder, which is a copy, not a claim, when that
folder is on another file system. Here every file appears whole or not at all: a message is
written under a hidden name and renamed into place, a consumer claims it by renaming it into
``claimed/`` on the same file system (of two consumers, one rename wins), and an exchange
table is created with its content. Celery picks it through ``CELERY_BROKER_TRANSPORT``.
"""

import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from queue import Empty

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

CLAIMED = "claimed"
BROKEN = "broken"


def write_whole(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` so that no reader ever sees the file partly written:
    under a hidden temporary name first (no queue matches it), then renamed, which is atomic
    within a file system."""
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, folder / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return folder / name


def claim(folder: Path, name: str) -> bytes | None:
    """The content of message ``name`` if this process won it, None if another consumer took
    it first: renaming into ``claimed/`` succeeds for exactly one of them."""
    claimed = folder / CLAIMED / name
    try:
        os.rename(folder / name, claimed)
    except FileNotFoundError:
        return None
    try:
        return claimed.read_bytes()
    finally:
        claimed.unlink(missing_ok=True)


def message_name(queue: str) -> str:
    """A name kombu's listing recognises (``<sortable>.<queue>.msg``), oldest first: wall
    clock nanoseconds, zero-padded so that sorting the names sorts the times."""
    return f"{time.time_ns():020d}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    # kombu's filesystem channel names the message ``payload``, its base ``message``: either
    # way kombu passes it by position.
    def _put(self, queue, payload, **kwargs):  # type: ignore[override]
        write_whole(Path(self.data_folder_out), message_name(queue), str_to_bytes(dumps(payload)))

    def _get(self, queue, timeout=None):  # kombu's signature; a poll here never waits
        folder = Path(self.data_folder_in)
        (folder / CLAIMED).mkdir(exist_ok=True)
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            payload = claim(folder, name)
            if payload is None:
                continue
            try:
                return loads(bytes_to_str(payload))
            except ValueError:
                # Whole files only reach here, so this is damage from outside (a disk full, a
                # crash before the data reached the disk): kept aside, never a dead worker.
                (folder / BROKEN).mkdir(exist_ok=True)
                write_whole(folder / BROKEN, name, payload)
                logger.error("broker message %s is not JSON; kept in %s", name, BROKEN)
        raise Empty()

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        # kombu creates a missing table with open("wb") and then writes it: a publisher reading
        # the table in between finds it empty. Create it whole (a hard link fails if another
        # process was first); kombu then adds the binding under its lock as for any table.
        file = self._exchange_file(exchange)
        if not file.exists():
            self.control_folder.mkdir(parents=True, exist_ok=True)
            empty = write_whole(self.control_folder, f".{uuid.uuid4()}.new", b"[]")
            try:
                os.link(empty, file)
            except FileExistsError:
                pass
            finally:
                empty.unlink()
        super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):
    Channel = Channel

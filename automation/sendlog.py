"""What a notifier said while it sent one delivery -- and nothing another delivery said.

apprise logs through one process-wide logger, and the automation sends deliveries
concurrently, one per thread (automation.notify). A handler on that logger hears every
thread: with apprise's LogCapture, a delivery kept the lines of the deliveries sent beside
it -- their URLs' tokens in their socket errors -- and masked only its own URL's secrets, so
one channel's token reached every reader of another's attempts. Here a capture keeps only
the records of the thread that opened it (a notifier's ``notify()`` runs in its caller's
thread), and the logger is opened to debug level, where apprise says why a socket failed,
while any capture is open, closed again when the last one ends, in whatever order they end.

(apprise 2's per-call results also keep each service's lines apart, but only through its
dispatcher, with its own retries -- a URL's ``?retry=`` -- and thread pools; the portal keeps
its own retries and timeouts, so it calls the notifier directly.)
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_APPRISE = logging.getLogger("apprise")
_FORMAT = logging.Formatter("%(levelname)s %(message)s")
_lock = threading.Lock()
_open = 0
_level_before = logging.NOTSET


class Said(logging.Handler):
    """The lines one thread's notifier logged, as ``LEVEL message``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.setFormatter(_FORMAT)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a notifier's malformed log call costs its line, not the send
            self.handleError(record)

    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def capture() -> Iterator[Said]:
    """Collect what apprise logs in this thread until the block ends."""
    said = Said()
    _open_logger()
    _APPRISE.addHandler(said)
    try:
        yield said
    finally:
        _APPRISE.removeHandler(said)
        _close_logger()


def _open_logger() -> None:
    global _open, _level_before
    with _lock:
        if _open == 0:
            _level_before = _APPRISE.level
            _APPRISE.setLevel(logging.DEBUG)
        _open += 1


def _close_logger() -> None:
    global _open
    with _lock:
        _open -= 1
        if _open == 0:
            _APPRISE.setLevel(_level_before)

"""Workers of a parallel run (pytest-xdist: `make check` runs three) each get a Redis database of
their own, as pytest-django gives each its own PostgreSQL test database: every test starts by
flushing the suite's Redis database, which would wipe what the other worker's test is using.

Loaded with `-p tests.parallel` (pyproject's addopts) so that it runs before Django reads
REDIS_URL: worker gwN takes the database N + 1 below the suite's (15: gw0 on 14, gw2 on 12).
"""

import os
from urllib.parse import urlsplit, urlunsplit


def worker_redis_url(url: str, worker: str) -> str:
    parts = urlsplit(url)
    index = int(parts.path.strip("/") or 0) - 1 - int(worker.removeprefix("gw"))
    if index < 1:
        raise RuntimeError(f"REDIS_URL {url} leaves no database below it for worker {worker}")
    return urlunsplit(parts._replace(path=f"/{index}"))


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("REDIS_URL"):
    os.environ.setdefault("REDIS_URL_OF_THE_SUITE", os.environ["REDIS_URL"])
    os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL_OF_THE_SUITE"], _worker)

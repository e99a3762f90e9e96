"""gunicorn's settings for the portal's web processes: the Dockerfile's command, the compose
file's `web` and the Kubernetes web Deployment all run `gunicorn -c portal/gunicorn.conf.py`,
and the tests that start a real gunicorn use it too. Command-line options override it.

Request limits: gunicorn reads a request's head before the portal sees it, and refuses what is
over its own limits in HTML (414, 431, 400). Its limits sit above the portal's
(API_MAX_URL_BYTES, API_MAX_HEADER_BYTES, API_MAX_HEADERS_TOTAL_BYTES, read from the same
settings), so a URI or header the portal refuses reaches the portal and gets its answer in the
error shape; only what is beyond gunicorn's own ceilings (a request line over 8,190 bytes, a
single header larger than all the portal accepts together) is gunicorn's to refuse.
"""

import logging
import os

from django.conf import settings
from gunicorn.glogging import Logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")  # read at first use

wsgi_app = "portal.wsgi"
bind = "0.0.0.0:8000"  # inside a container; tests pass --bind
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))  # gunicorn's own variable
# Threads, one per pooled connection: a request waiting on a database that does not answer
# (DB_READ_TIMEOUT at most, then 503) holds one thread, not its worker, so liveness
# (/health/), readiness and whatever needs no database are answered beside it at once.
worker_class = "gthread"
threads = settings.DB_POOL_SIZE
# The portal's own access line (portal.access: one JSON object per request, with its request
# id, who, route, status and duration) is the access log; gunicorn's Apache-style line would
# be a second, plain-text line per request without the request id.
accesslog = None
loglevel = settings.LOG_LEVEL.lower()


class PortalLogger(Logger):
    """gunicorn's own lines (starting, workers booting and exiting, a worker timing out) go
    through the portal's logging like every other line: one JSON object each (LOG_FORMAT)."""

    def setup(self, cfg):
        super().setup(cfg)
        logs = [self.error_log]
        if cfg.accesslog in (None, "-"):  # a file asked for on the command line stays a file
            logs.append(self.access_log)
        for log in logs:
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True  # to the root handler portal.logging configured
        logging.getLogger("gunicorn").propagate = True


logger_class = PortalLogger

# gunicorn's request line (method, URI, version) may be 8,190 bytes at most; the portal's
# URI limit is below that, so e.g. "OPTIONS <URI> HTTP/1.1" at that limit still reaches it.
limit_request_line = 8190
# One header line ("Name: value" and its CRLF): as large as all the headers the portal
# accepts together, so a header over the portal's own per-header limit reaches the portal.
limit_request_field_size = settings.API_MAX_HEADERS_TOTAL_BYTES + 1024

# gunicorn cannot read a longer request line: a URI limit above this would be its to refuse.
_CEILING = 8190 - len("OPTIONS  HTTP/1.1")
if settings.API_MAX_URL_BYTES > _CEILING:
    raise SystemExit(f"API_MAX_URL_BYTES is at most {_CEILING} behind gunicorn")

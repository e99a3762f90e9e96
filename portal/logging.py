"""Structured logging: one JSON object per line, from our code and from libraries alike.

structlog renders; stdlib loggers (Django, Celery, ours) are routed through the same processor
chain, so every line carries the request id bound in ``portal.middleware`` through
structlog's contextvars.
"""

import logging
import logging.config

import structlog
from structlog.typing import Processor

_SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


class QuietExpected(logging.Filter):
    """Drop lines that say nothing the access log does not, and would cry wolf: the
    development server's own line per request (``portal.access`` has one for every request,
    with its status; runserver logs each 5xx -- a readiness answer of 503 included -- as an
    error), Django's error line for the demo targets, which fail on purpose, and kombu's
    warning that the embedded mode's filesystem broker has no host name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "django.server" and hasattr(record, "status_code"):
            return False
        if record.name == "kombu.connection" and "No hostname was supplied" in str(record.msg):
            return False  # the embedded mode's filesystem broker has no host, by design
        return not (record.name == "django.request" and "/demo/" in record.getMessage())


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": _SHARED_PROCESSORS,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                }
            },
            "filters": {"quiet": {"()": QuietExpected}},
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "formatter": "structured",
                    "filters": ["quiet"],
                },
            },
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                # Our access log (portal.middleware) replaces Django's per-request lines.
                "django.server": {"level": "ERROR"},
                "django.request": {"level": "ERROR"},
                "django.db.backends": {"level": "INFO"},
                # apprise says what a send did in its own log records, at debug level with
                # the whole payload and URL: automation.notify captures them into the
                # delivery's attempt row. None reach the portal's log (a URL holds tokens),
                # nor its complaints about a URL a client sent (that is the client's 422).
                "apprise": {"level": "WARNING", "propagate": False, "handlers": []},
                # urllib3 (under apprise's requests) logs each call's URL at debug level, and
                # a notifier's URL holds its token: never, whatever LOG_LEVEL says.
                "urllib3": {"level": "INFO"},
            },
        }
    )
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

"""Structured logging: one JSON object per line, from our code and from libraries alike.

structlog renders; stdlib loggers (Django, Celery, ours) are routed through the same processor
chain, so every line carries the request id bound in ``portal.middleware`` through
structlog's contextvars.
"""

import logging
import logging.config

import structlog

_SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


class DropDemoTargets(logging.Filter):
    """The demo targets (/demo/...) fail on purpose; their 5xx are not errors worth a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/demo/" not in str(getattr(record, "msg", ""))


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
            "filters": {"drop_demo": {"()": DropDemoTargets}},
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "formatter": "structured",
                    "filters": ["drop_demo"],
                },
            },
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                # Our access log (portal.middleware) replaces Django's per-request lines.
                "django.server": {"level": "ERROR"},
                "django.request": {"level": "ERROR"},
                "django.db.backends": {"level": "INFO"},
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

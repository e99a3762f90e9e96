"""Per-request facts that code far from the view needs: the request id and the client address.

Set by ``portal.middleware.RequestContextMiddleware``; read by the audit log and by
structlog (the request id is bound as a structlog context variable too). Outside a request
(Celery tasks, management commands) both are empty.
"""

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="")

# Accept a caller's id only if it is short and plain, so it cannot forge log lines.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def choose_request_id(incoming: str | None) -> str:
    if incoming and _REQUEST_ID_RE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


def current_client_ip() -> str:
    return client_ip_var.get()

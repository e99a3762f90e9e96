"""The audit log: one row per change, with the actor, the request id and the client address."""

from collections.abc import Iterable
from typing import Any

from portal.models import AuditEntry
from portal.requestcontext import current_client_ip, current_request_id


def entry(actor, action: str, target_type: str, target: str, changes: Any = None) -> AuditEntry:
    return AuditEntry(
        actor=str(actor)[:200],
        action=action,
        target_type=target_type,
        target=target[:200],
        changes=changes or {},
        client_ip=current_client_ip() or None,
        request_id=current_request_id(),
    )


def record(actor, action: str, target_type: str, target: str, changes: Any = None) -> AuditEntry:
    audit_entry = entry(actor, action, target_type, target, changes)
    audit_entry.save()
    return audit_entry


def record_many(entries: Iterable[AuditEntry]) -> None:
    AuditEntry.objects.bulk_create(list(entries))

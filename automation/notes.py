"""Notes on alerts: what a person on call found and does, in their words (incident updates).

One write path (``add_note``), audited; the acknowledgement's optional note goes through
``write`` inside its own transaction. A note is plain text of at most MAX_NOTE_CHARS
characters: terminal escapes and control characters are taken out on the way in (as for
every free text, portal.fields.plain_text), and every page escapes it on the way out.
``public`` notes of an ongoing incident are what the status page shows.
"""

from django.db import transaction

from automation.models import Alert, Note
from portal import audit
from portal.errors import InvalidInput, NotFound
from portal.fields import plain_text

MAX_NOTE_CHARS = 5_000


def clean_text(text: str, field: str = "text") -> str:
    """The text as stored, or a 422 naming ``field``: empty (or only blanks) and longer
    than MAX_NOTE_CHARS are refused."""
    cleaned = plain_text(text)
    if not cleaned.strip():
        raise InvalidInput("a note needs some text", fields={field: "empty"})
    if len(cleaned) > MAX_NOTE_CHARS:
        raise InvalidInput(
            f"a note is at most {MAX_NOTE_CHARS} characters",
            fields={field: f"{len(cleaned)} characters, at most {MAX_NOTE_CHARS}"},
        )
    return cleaned


def write(alert: Alert, actor, text: str, public: bool) -> Note:
    """The note and its audit row, in the caller's transaction (the text already clean)."""
    note = Note.objects.create(alert=alert, text=text, public=public, author=str(actor)[:200])
    audit.record(
        actor,
        "alert.note",
        "alert",
        f"{alert.service.name}#{alert.id}",
        {"note": note.id, "public": public, "characters": len(text)},
    )
    return note


def add_note(alert_id: int, actor, text: str, public: bool = False) -> Note:
    """Add a note to an alert, open or resolved (a word after the fact is an update too)."""
    cleaned = clean_text(text)
    with transaction.atomic():
        alert = Alert.objects.select_related("service").filter(id=alert_id).first()
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        return write(alert, actor, cleaned, public)

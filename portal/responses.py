"""JSON responses for documents already in their documented shape."""

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse


def json_response(document, status: int = 200) -> HttpResponse:
    """Serialise without the API framework's per-item validation; for large, hot documents
    whose shape the code that built them guarantees (the schema still documents them)."""
    return HttpResponse(
        DjangoJSONEncoder(separators=(",", ":")).encode(document),
        status=status,
        content_type="application/json",
    )


def page_of(rows, limit: int, offset: int, documents=list) -> dict:
    """One page of a collection in the shape every list of the API answers: ``items``, the
    ``count`` of the whole (filtered) collection, and the ``limit`` and ``offset`` applied --
    so a client knows when it has read everything, whichever list it reads. ``documents``
    turns the page's rows (a sliced queryset) into its items."""
    return {
        "items": documents(rows[offset : offset + limit]),
        "count": rows.count(),
        "limit": limit,
        "offset": offset,
    }

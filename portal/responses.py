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

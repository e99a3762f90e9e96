"""CSV exports people open in a spreadsheet: streamed row by row, and guarded against formula
injection -- a cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
one a spreadsheet may run as a formula (``=HYPERLINK(...)`` in an actor's name, a target, a
change), so it is written with a ``'`` before it, as OWASP's CSV injection page advises; so
is one where such a character follows spaces or double quotes only (`` =1+1``, ``"=1+1``): a
spreadsheet that trims spaces or quotes begins the cell there. (A ``'`` before it is the
guard itself: spreadsheets read a cell so begun as text.)"""

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What may come before a formula's first character in a cell a spreadsheet still runs.
_LEADING = ' \t\r\n\v\f\u00a0"'


def could_run(text: str) -> bool:
    """Whether a spreadsheet might take this cell's text for a formula."""
    return text.startswith(FORMULA_STARTS) or text.lstrip(_LEADING).startswith(FORMULA_STARTS)


def safe_cell(value: object) -> str:
    """The text of a cell, a formula defused."""
    text = "" if value is None else str(value)
    return "'" + text if could_run(text) else text


class _Line:
    """csv.writer's file: each write returns the line instead of storing it."""

    def write(self, line: str) -> str:
        return line


def lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])


def streamed(
    filename: str, header: Iterable[str], rows: Iterable[Iterable[object]]
) -> StreamingHttpResponse:
    """A ``text/csv`` download, written as the rows are read (never whole in memory)."""
    response = StreamingHttpResponse(lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

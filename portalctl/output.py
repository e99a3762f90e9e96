"""Printing: tables for people, JSON for machines, errors on stderr.

Everything printed goes through ``echo``, which writes out every control character but the
line feeds between lines (``\\x1b`` as the four characters ``\\x1b``): a string from the portal --
a description, a check's error, a message quoting what was sent -- can then neither
recolour, move the cursor, retitle nor clear the terminal. ``shown`` does it to one value
within a line, line feeds too. JSON is written with every control character escaped
(``\\u001b``), as JSON allows.
"""

import json
import re
import sys

import click

from portalctl.client import Refused

# Bidirectional overrides, embeddings and isolates (U+202A-U+202E, U+2066-U+2069) are
# written out too: a terminal that lays out bidirectional text would show "\u202egnp.exe"
# as "exe.png", a name as another (issue 28, breaking trial). Marks (U+200E/F) stay.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROL_BUT_LINE_FEED = re.compile(rf"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _written_out(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def shown(value) -> str:
    """A value from the portal as part of a line: every control character written out."""
    return _CONTROL.sub(_written_out, str(value))


def echo(text: str = "", *, err: bool = False, nl: bool = True, own: str = "") -> None:
    """Print ``text`` with its control characters written out (line feeds kept); ``own``:
    portalctl's own terminal control before it (rewriting the live status line)."""
    click.echo(own + _CONTROL_BUT_LINE_FEED.sub(_written_out, text), err=err, nl=nl)


def emit_json(document) -> None:
    echo(json.dumps(document, indent=2, sort_keys=True, default=str, ensure_ascii=True))


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table: a header, then one line per row, columns padded to fit."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    header = [c.upper().replace("_", " ") for c in columns]
    widths = [max(len(x) for x in col) for col in zip(header, *cells, strict=False)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    ]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value) or "-"
    return shown(value)


def print_refused(exc: Refused, as_json: bool) -> None:
    """The portal's message, each field's reason, and the request id (to find it in the
    portal's logs); with --json the portal's error object on stdout, with every key a
    pipeline reads there always present: ``fields`` ({} when the refusal names none, as the
    portal leaves it out), the request id (from the header if the body has none), the status."""
    if as_json:
        emit_json(
            {
                "error": {
                    "code": exc.code,
                    "message": exc.message,
                    "fields": exc.fields,
                    **exc.error,
                    "request_id": exc.request_id,
                    "status": exc.status,
                }
            }
        )
    echo(
        f"portalctl: the portal refused (HTTP {exc.status}, {shown(exc.code)}): "
        f"{shown(exc.message)}",
        err=True,
    )
    for path, reason in exc.fields.items():
        echo(f"  {shown(path)}: {shown(reason)}", err=True)
    if "current_version" in exc.error:
        echo(f"  current version: {shown(exc.error['current_version'])}", err=True)
    if exc.request_id:
        echo(f"  request id: {shown(exc.request_id)}", err=True)


def fail(message: str) -> None:
    echo(f"portalctl: {message}", err=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()

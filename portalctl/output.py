"""Printing: tables for people, JSON for machines, errors on stderr."""

import json
import sys

import click

from portalctl.client import Refused


def emit_json(document) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


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
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


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
    click.echo(
        f"portalctl: the portal refused (HTTP {exc.status}, {exc.code}): {exc.message}", err=True
    )
    for path, reason in exc.fields.items():
        click.echo(f"  {path}: {reason}", err=True)
    if "current_version" in exc.error:
        click.echo(f"  current version: {exc.error['current_version']}", err=True)
    if exc.request_id:
        click.echo(f"  request id: {exc.request_id}", err=True)


def fail(message: str) -> None:
    click.echo(f"portalctl: {message}", err=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()

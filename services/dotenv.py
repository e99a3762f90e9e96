"""A configuration as a dotenv file a shell can ``source``.

Keys come in sorted order, upper-cased, nested keys joined with ``_`` (``database.port`` ->
``DATABASE_PORT``),
characters other than letters, digits and ``_`` become ``_``. Values are single-quoted the
POSIX-shell way, so nothing in them is expanded; arrays and objects are written as JSON.
Secrets the caller may not read are left out, with a comment saying so.
"""

import json
import re
from collections.abc import Collection

from portal.errors import Conflict

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def env_key(parts) -> str:
    key = _UNSAFE.sub("_", "_".join(str(p) for p in parts)).upper()
    return f"_{key}" if key[:1].isdigit() else key


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def env_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def leaves(document, prefix=()):
    """(path, value) of every leaf, keys in sorted order: PostgreSQL's jsonb does not keep the
    order a document was sent in (SQLite's JSON does), and a file a pipeline diffs or a
    person reads should not change with the database underneath."""
    if isinstance(document, dict) and document:
        for key in sorted(document):
            yield from leaves(document[key], (*prefix, key))
    else:
        yield prefix, document


def to_dotenv(values: dict, *, hidden: Collection[tuple] = frozenset(), prefix: str = "") -> str:
    """``hidden``: the leaves (as ``leaves`` yields them) to leave out: secrets the caller
    may not read."""
    lines: list[str] = []
    seen: dict[str, str] = {}
    for path, value in leaves(values):
        if not path:
            continue  # an empty document: no variables (not a line named by the prefix alone)
        key = prefix.upper() + env_key(path)
        dotted = ".".join(str(p) for p in path)
        if key in seen:
            raise Conflict(
                f"{dotted!r} and {seen[key]!r} both become {key} in env format",
                code="env_key_collision",
            )
        seen[key] = dotted
        if path in hidden:
            lines.append(f"# {key} omitted: a secret (needs the config:secrets scope)")
            continue
        lines.append(f"{key}={shell_quote(env_value(value))}")
    return "".join(f"{line}\n" for line in lines)

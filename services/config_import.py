"""Importing a service's environment variables as a configuration version (the seed's
"Configuration Migration": scattered ``os.getenv`` calls become one validated document).

Env-style text (a dotenv file) or key/value pairs become a document: a prefix is stripped,
keys are lower-cased (``API_TIMEOUT`` -> ``api_timeout``), ``__`` nests
(``DB__PORT`` -> ``db.port``), and each value is coerced to the type the current schema
declares for it -- or, without one, to the type it reads as (integer, number, boolean,
JSON array or object, else string). A schema can be proposed from those types. The version
is stored through services.configs (``put_schema``, ``publish``): the one write path,
validated and audited.
"""

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from portal.errors import InvalidInput
from services import configs
from services.dotenv import shell_quote

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
# Names that hold credentials: proposed as secrets (writeOnly), so they are stored encrypted.
SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_?key|private_?key|credential)", re.I)
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:[^/@]+@", re.I)
MAX_KEYS = 1000


# --- Reading env-style text -----------------------------------------------------------------

# How dotenv text is read (docs/decisions.md, "Dotenv dialects"): ``shell`` as a POSIX shell
# reads assignments (what the portal's own ``?format=env`` writes), ``docker`` as
# ``docker run --env-file`` does (each value literally), ``auto`` by what the text looks like.
DIALECTS = ("auto", "shell", "docker")
QUOTES_INSIDE = (
    "quotes inside the value were removed (shell quoting); import with dialect docker to "
    "keep them as written"
)
ESCAPES_READ = (
    "a backslash was read as an escape (shell quoting); import with dialect docker to keep it"
)
COMMENT_DROPPED = "text after ' #' was dropped as a comment (shell rules)"
KEPT_COMMENT = (
    "' #' and what follows are part of the value (docker reads a line literally; a shell or "
    "compose would drop them as a comment)"
)
KEPT_QUOTES = (
    "the quotes around the value are part of it (docker reads them literally); import with "
    "dialect shell to remove them"
)
KEPT_SPACE = "space at the start or end of the value is part of it (docker reads it literally)"
FROM_ENVIRONMENT = (
    "a name alone: docker takes its value from the environment docker runs in, which an "
    "import does not have; write KEY=value"
)


@dataclass
class Dotenv:
    """What the text said: the values, the dialect read (``shell`` or ``docker``), and a
    warning per key whose value is not what another reader would take (no values in them:
    a warning may be about a secret)."""

    values: dict[str, str]
    dialect: str
    warnings: list[dict] = field(default_factory=list)  # {"key", "line", "reason"}


def read_dotenv(text: str, dialect: str = "auto") -> Dotenv:
    """The dotenv ``text`` read in ``dialect``. ``auto`` reads it as ``shell`` when it uses
    the shell's constructs -- a value that starts with a quote, an ``export`` line -- or
    when only a shell can read it (space around ``=``); else as ``docker``, literally, which
    is what `docker run --env-file` and most readers take from a plain ``KEY=value``
    (``LEGACY_FLAGS=["a","b"]`` stays ``["a","b"]``). InvalidInput names each line that
    cannot be read (``dotenv:3``)."""
    if dialect not in DIALECTS:
        raise InvalidInput("unknown dialect", fields={"dialect": f"one of {', '.join(DIALECTS)}"})
    if dialect == "shell" or (dialect == "auto" and _uses_shell(text)):
        return _read_shell(text)
    if dialect == "docker":
        return _read_docker(text)
    try:
        return _read_docker(text)
    except InvalidInput as docker:
        try:
            return _read_shell(text)
        except InvalidInput:
            raise docker from None


def _lines(text: str) -> list[str]:
    """The text's lines as a shell or docker splits them: at line feeds only (a carriage
    return before one dropped). str.splitlines also breaks at U+2028, NEL, form feed and
    more, which a value may hold: the portal's own export of a value with U+2028 did not read back
    (issue 28, breaking trial). A byte-order mark before the first is dropped, as docker
    drops it: a shell-style file saved with one had its first line refused."""
    return [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]


def _uses_shell(text: str) -> bool:
    for line in _lines(text):
        stripped = line.strip()
        if stripped.startswith("#") or "=" not in stripped:
            continue
        if stripped.startswith("export "):
            return True
        if stripped.partition("=")[2].lstrip()[:1] in ("'", '"'):
            return True
    return False


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=value lines as a shell reads them: ``export`` allowed, ``#`` comments, values
    unquoted, 'single-quoted' (literal) or "double-quoted" (\\ escapes), pieces joined as the
    shell joins ``'it'"'"'s'`` -- so the portal's own ``?format=env`` output reads back.
    InvalidInput names each bad line (``dotenv:3``)."""
    return _read_shell(text).values


def _read_shell(text: str) -> Dotenv:
    """As a shell reads the file: a quoted value may go on over several lines (a PEM
    certificate, as the portal's own export writes one), its line feeds kept."""
    found: dict[str, str] = {}
    errors: dict[str, str] = {}
    warnings: list[dict] = []
    lines: dict[str, int] = {}
    open_quote: tuple[str, int, str, str] | None = None  # (key, line, value so far, why)
    for number, line in enumerate(_lines(text), start=1):
        if open_quote is not None:
            key, first, raw, _ = open_quote
            raw, number = f"{raw}\n{line}", first
        else:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("export "):
                stripped = stripped[len("export ") :].lstrip()
            key, sep, raw = stripped.partition("=")
            key = key.strip()
            if not sep or not ENV_KEY.match(key):
                errors[f"dotenv:{number}"] = "not a KEY=value line"
                continue
        open_quote = None
        try:
            found[key], notes = _shell_value(raw)
        except ValueError as exc:
            if str(exc).startswith("unterminated"):
                open_quote = (key, number, raw, str(exc))  # the next line goes on with it
            else:
                errors[f"dotenv:{number}"] = str(exc)
            continue
        _again(warnings, lines, key, number)
        warnings += [{"key": key, "line": number, "reason": note} for note in notes]
    if open_quote is not None:
        errors[f"dotenv:{open_quote[1]}"] = f"{open_quote[3]} (to the end of the file)"
    if errors:
        raise InvalidInput("the dotenv text has lines that cannot be read", fields=errors)
    return Dotenv(found, "shell", warnings)


def _shell_value(raw: str) -> tuple[str, list[str]]:
    """One value: quoted pieces and unquoted ones joined; an unquoted ``#`` after a space
    starts a comment; unquoted space around the value is dropped, inside it kept. With it,
    what reading it changed beyond quotes around the whole value (which every reader but
    docker's takes away): quotes inside it, backslashes read, a comment dropped."""
    out: list[str] = []
    pending: list[str] = []
    quote = ""
    quotes = escapes = 0
    spaced = raw[:1] in " \t"  # "KEY= # note" is empty; "KEY=#1" is "#1", as in a shell
    text = raw.strip()
    comment_at = len(text)
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if quote == "'":
            quote, piece = ("", "") if char == "'" else (quote, char)
        elif quote == '"':
            if char == "\\":
                char, i = (text[i], i + 1) if i < len(text) else ("\\", i)
                escapes += 1
                piece = {"n": "\n", "t": "\t"}.get(char, char)
            else:
                quote, piece = ("", "") if char == '"' else (quote, char)
        elif char in " \t":
            pending.append(char)
            continue
        elif char == "#" and (pending or (spaced and not out)):
            comment_at = i - 1
            break
        elif char in "'\"":
            quote, piece = char, ""
            quotes += 1
        elif char == "\\":
            piece, i = (text[i], i + 1) if i < len(text) else ("", i)
            escapes += 1
        else:
            piece = char
        out.extend(pending)
        pending = []
        out.append(piece)
    if quote:
        raise ValueError(f"unterminated {quote} quote")
    value = "".join(out)
    word = text[:comment_at].rstrip()
    whole = quotes == 1 and len(word) > 1 and word[0] == word[-1] and word[0] in ("'", '"')
    notes = []
    if quotes and not whole and word != shell_quote(value):
        notes.append(QUOTES_INSIDE)
    if escapes:
        notes.append(ESCAPES_READ)
    if text[comment_at:].strip("# \t"):
        notes.append(COMMENT_DROPPED)
    return value, notes


def _read_docker(text: str) -> Dotenv:
    """As `docker run --env-file` reads a file: a line is KEY=VALUE, the value everything
    after the first ``=`` as written (no quotes, escapes nor comments in it); a line that
    starts with ``#`` (after leading space) is a comment; a name alone would take docker's
    own environment's value, refused here."""
    found: dict[str, str] = {}
    errors: dict[str, str] = {}
    warnings: list[dict] = []
    lines: dict[str, int] = {}
    text = text.removeprefix("\ufeff")
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep and ENV_KEY.match(key):
            errors[f"dotenv:{number}"] = FROM_ENVIRONMENT
        elif sep and key != key.rstrip():
            errors[f"dotenv:{number}"] = "space before '=': docker reads KEY=value as written"
        elif not sep or not ENV_KEY.match(key):
            errors[f"dotenv:{number}"] = "not a KEY=value line"
        if f"dotenv:{number}" in errors:
            continue
        found[key] = value
        _again(warnings, lines, key, number)
        if re.search(r"[ \t]#", value):
            warnings.append({"key": key, "line": number, "reason": KEPT_COMMENT})
        if len(value) > 1 and value[0] == value[-1] and value[0] in ("'", '"'):
            warnings.append({"key": key, "line": number, "reason": KEPT_QUOTES})
        if value != value.strip(" \t"):
            warnings.append({"key": key, "line": number, "reason": KEPT_SPACE})
    if errors:
        raise InvalidInput("the dotenv text has lines that cannot be read", fields=errors)
    return Dotenv(found, "docker", warnings)


def _again(warnings: list[dict], lines: dict[str, int], key: str, number: int) -> None:
    if key in lines:
        reason = f"set again: line {lines[key]} is overridden by this one"
        warnings.append({"key": key, "line": number, "reason": reason})
    lines[key] = number


# --- From env keys to a document ------------------------------------------------------------


def document_from_env(env: dict[str, str], prefix: str = "") -> tuple[dict, dict[str, str]]:
    """(nested document of strings, env key -> dotted path) for the keys that carry
    ``prefix`` (stripped). Two keys reaching the same place, or a value where another key
    needs an object, are refused by name."""
    document: dict = {}
    mapping: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key in sorted(env):
        if not key.startswith(prefix):
            continue
        if not ENV_KEY.match(key):
            errors[f"env.{key}"] = "not an environment variable name (letters, digits, _)"
            continue
        parts = key[len(prefix) :].lower().split("__")
        if not all(parts):
            errors[f"env.{key}"] = "an empty name part (leading, trailing or ___ in the key)"
            continue
        node = document
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        dotted = ".".join(parts)
        if not isinstance(node, dict) or parts[-1] in node:
            errors[f"env.{key}"] = f"{dotted!r} is already set by another key"
            continue
        node[parts[-1]] = env[key]
        mapping[key] = dotted
    if errors:
        raise InvalidInput("some keys cannot become configuration fields", fields=errors)
    if len(mapping) > MAX_KEYS:
        raise InvalidInput(
            f"at most {MAX_KEYS} keys at once", fields={"env": f"{len(mapping)} keys"}
        )
    return document, mapping


def declared_type(schema: dict | None, path: list[str]) -> str | None:
    """The JSON type the schema declares at ``path`` (following ``properties`` only), the
    first non-null one of a list; None if it says none."""
    node: Any = schema or {}  # a schema's nodes are JSON
    for part in path:
        node = (node.get("properties") or {}).get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return None
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def coerce(text: str, kind: str | None = None):
    """A value for the declared JSON type ``kind``, or inferred without one. ValueError
    says why a value cannot have the declared type."""
    if kind == "string":
        return text
    if kind in ("integer", "number"):
        value = _number(text.strip(), integer=kind == "integer")
        if value is None:
            raise ValueError(f"not {'an integer' if kind == 'integer' else 'a number'}")
        return value
    if kind == "boolean":
        word = text.strip().lower()
        if word not in TRUE | FALSE:
            raise ValueError("not a boolean (true/false, yes/no, on/off, 1/0)")
        return word in TRUE
    if kind in ("array", "object"):
        try:
            value = _json(text)
        except ValueError:
            raise ValueError(f"not a JSON {kind}") from None
        if not isinstance(value, list if kind == "array" else dict):
            raise ValueError(f"not a JSON {kind}")
        return value
    return infer(text)


def infer(text: str):
    """What an undeclared value reads as: booleans only as the words true/false (``1`` is
    an integer, ``yes`` a string), numbers as JSON writes them, JSON arrays and objects."""
    word = text.strip()
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    number = _number(word, integer=False)
    if number is not None:
        return number
    if word[:1] in "[{":
        try:
            return _json(word)
        except ValueError:
            return text
    return text


def _json(text: str):
    """JSON as a database column can hold it: no NaN or Infinity."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _number(word: str, *, integer: bool) -> int | float | None:
    """The number ``word`` spells, if it is one a JSON document can hold: no more than 64
    bits for an integer, finite for a float (``1e999`` is not)."""
    if INTEGER.match(word):
        value = int(word) if len(word) <= 20 else None
        return value if value is not None and -(2**63) <= value < 2**63 else None
    if integer or not NUMBER.match(word) or len(word) > 100:
        return None
    number = float(word)
    return number if math.isfinite(number) else None


def coerce_document(document: dict, schema: dict | None, prefix: tuple = ()) -> dict:
    """Every string leaf coerced (see ``coerce``); InvalidInput names each field whose value
    cannot have its declared type (``values.api_timeout``)."""
    errors: dict[str, str] = {}
    result = _coerce_node(document, schema, list(prefix), errors)
    if errors:
        raise InvalidInput("some values do not have the type the schema declares", fields=errors)
    return result


def _coerce_node(node: dict, schema, path: list[str], errors: dict) -> dict:
    out = {}
    for key, value in node.items():
        here = [*path, key]
        if isinstance(value, dict):
            out[key] = _coerce_node(value, schema, here, errors)
            continue
        kind = declared_type(schema, here)
        try:
            out[key] = coerce(value, kind)
        except ValueError as exc:
            errors["values." + ".".join(here)] = f"{exc} (the schema says {kind})"
    return out


# --- Proposing a schema ---------------------------------------------------------------------

_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


def json_type(value) -> str:
    for python, name in _TYPES:  # bool first: a bool is also an int
        if isinstance(value, python):
            return name
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"


def propose_schema(values: dict) -> dict:
    """A JSON Schema (2020-12) the imported values pass: each field typed as imported,
    all required, no others; names and URLs that hold credentials marked secret
    (``writeOnly``), so the portal stores them encrypted."""
    properties = {}
    for key, value in sorted(values.items()):
        if isinstance(value, dict) and value:
            properties[key] = propose_schema(value)
            continue
        properties[key] = {"type": json_type(value)}
        if SECRET_NAME.search(key) or (isinstance(value, str) and URL_WITH_PASSWORD.match(value)):
            properties[key]["writeOnly"] = True
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(values),
        "additionalProperties": False,
    }


# --- Storing --------------------------------------------------------------------------------


@dataclass
class Imported:
    outcome: configs.Outcome
    mapping: dict[str, str]
    types: dict[str, str]
    schema: dict | None = None  # the proposed schema, when one was asked for
    schema_version: int | None = None
    ignored: list[str] = field(default_factory=list)


def import_env(
    name: str,
    env: dict[str, str],
    actor,
    *,
    prefix: str = "",
    propose: bool = False,
    base_version: int | None = None,
    comment: str = "",
    dry_run: bool = False,
) -> Imported:
    """Store ``env`` as ``name``'s next configuration version (with ``propose``, after a
    schema proposed from it). ``base_version`` None: based on whatever is current (an import
    replaces the whole document; the audit log says which version it followed). A dry run
    does it all and rolls it back."""
    document, mapping = document_from_env(env, prefix)
    if not mapping:
        reason = f"no key starts with {prefix!r}" if prefix else "no keys"
        raise InvalidInput("nothing to import", fields={"env": reason})
    comment = comment or f"imported from {len(mapping)} environment variables"
    with transaction.atomic():
        service = configs.get_service(name, lock=True)
        declared = None if propose else configs.current_schema(service)
        values = coerce_document(document, declared.schema if declared else None)
        proposed = propose_schema(values) if propose else None
        if proposed is not None:
            configs.put_schema(name, proposed, actor, comment=comment)
        if base_version is None:
            current = configs.current_version(service)
            base_version = current.version if current else 0
        outcome = configs.publish(name, values, base_version, actor, comment=comment)
        schema = configs.current_schema(service)
        if dry_run:
            transaction.set_rollback(True)
    return Imported(
        outcome=outcome,
        mapping=mapping,
        types={path: json_type(value) for path, value in _leaves(values)},
        schema=proposed,
        schema_version=schema.version if schema else None,
        ignored=sorted(k for k in env if not k.startswith(prefix)),
    )


def _leaves(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value

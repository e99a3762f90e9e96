"""The local `.env` that `make run` keeps, so that a command typed in another shell (say
``manage.py create_api_token``) sees the same portal as the one running: development mode, the
same secret key, the same database and broker.

``make run`` calls ``python -m portal.devenv`` before anything else. It first makes sure the
database and broker it was given answer (and says what to do when they do not), then adds
what is missing --
``DEBUG=true``, a generated ``SECRET_KEY``, readable console logs -- and rewrites one block of
its own with the ``DATABASE_URL`` and ``REDIS_URL`` it was started with (none: the embedded
SQLite file and filesystem broker). Lines a person wrote are kept as they are. Settings read
the file (portal.settings); the environment always wins over it. Production has no `.env`
(the image leaves it out), so there a missing ``SECRET_KEY`` still stops the start.

Written with a library's parser (python-dotenv) for reading, and plain lines for writing, so
that comments and order survive.
"""

import io
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from dotenv import dotenv_values

BEGIN = "# >>> written by `make run`: the database and broker it last ran on"
END = "# <<< end of what `make run` writes here"
HEADER = (
    "# Local development settings, read by portal/settings.py (the environment wins).\n"
    "# `make run` created this file; edit it freely outside its own block below.\n"
)
MANAGED = ("DATABASE_URL", "REDIS_URL")


def update(path: Path, environ: Mapping[str, str]) -> list[str]:
    """Bring ``path`` up to date for a `make run` started with ``environ``; returns what
    changed, in words."""
    text = path.read_text() if path.exists() else HEADER
    own = _without_block(text)
    current = dotenv_values(stream=io.StringIO(own))
    lines = own.rstrip("\n").splitlines()
    notes = []
    if "DEBUG" not in current:
        lines.append("DEBUG=true")
        notes.append("DEBUG=true")
    if not current.get("SECRET_KEY"):
        lines.append(f"SECRET_KEY={secrets.token_urlsafe(50)}")
        notes.append("a new SECRET_KEY")
    if "LOG_FORMAT" not in current:
        lines.append("LOG_FORMAT=console")
        notes.append("LOG_FORMAT=console")
    block = [BEGIN]
    for name in MANAGED:
        value = environ.get(name, "")
        block.append(f"{name}={value}" if value else f"# {name} unset: embedded mode")
    block.append(END)
    path.write_text("\n".join([*lines, *block]) + "\n")
    path.chmod(0o600)  # it holds a secret key
    return notes


def _without_block(text: str) -> str:
    """The file without the block `make run` owns."""
    kept, inside = [], False
    for line in text.splitlines():
        if line == BEGIN:
            inside = True
        elif line == END:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept) + "\n"


def unreachable(environ: Mapping[str, str]) -> str | None:
    """Why the database or the broker `make run` was given cannot be used, said so a person
    knows what to do (None when both answer). Migrations would otherwise fail with a
    connection pool's timeout after a page of tracebacks."""
    database = environ.get("DATABASE_URL", "")
    if database.startswith(("postgres://", "postgresql://")):
        try:
            psycopg.connect(database, connect_timeout=3).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            parts = urlsplit(database)
            name = parts.path.lstrip("/")
            if f'database "{name}" does not exist' in reason:
                return (
                    f"DATABASE_URL names the database {name!r}, which does not exist on "
                    f"{parts.hostname}:{parts.port or 5432}; create it (e.g. `createdb -h "
                    f"{parts.hostname} -U {parts.username or 'postgres'} {name}`) and run "
                    "make run again"
                )
            return f"cannot connect to PostgreSQL (DATABASE_URL): {reason}"
    broker = environ.get("REDIS_URL", "")
    if broker:
        try:
            redis.Redis.from_url(broker, socket_connect_timeout=3, socket_timeout=3).ping()
        except redis.RedisError as exc:
            return f"cannot reach Redis (REDIS_URL): {exc}"
    return None


def main() -> None:
    default = Path(__file__).resolve().parent.parent / ".env"
    path = Path(os.environ.get("PORTAL_ENV_FILE") or default)
    problem = unreachable(os.environ)
    if problem:
        sys.stderr.write(f"make run: {problem}\n")
        sys.exit(1)
    notes = update(path, os.environ)
    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite in var/"
    broker = "Redis" if os.environ.get("REDIS_URL") else "a filesystem broker in var/"
    added = f"; added {', '.join(notes)}" if notes else ""
    sys.stderr.write(f"{path}: development settings, {database}, {broker}{added}\n")


if __name__ == "__main__":
    main()

"""The README's Settings table tells the truth about defaults.

Each row names variables and their default; the portal reads each variable through one of the
``portal.env`` helpers, which get the default the code uses. A fresh interpreter loads the
settings with nothing set (no ``.env`` file, no ``DEBUG``) with those helpers recording what
each variable came out as, and again with ``DEBUG=true`` for the rows that say what changes
with it. Every default the table gives as a literal (`4`, `100/200`, `true` (`false` with
`DEBUG`), `empty`...) must be what the portal uses: a default changed in the code or in the
README alone fails here.
"""

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)

# Loads portal.settings with every env helper recording its result: {name: value}.
RECORDER = """
import json, os, sys
import portal.env as env

seen = {}

def recording(helper):
    def read(name, *args, **kwargs):
        value = helper(name, *args, **kwargs)
        if name not in os.environ:  # what the portal uses when the variable is unset
            seen.setdefault(name, value)
        return value
    return read

for helper in ("env_str", "env_bool", "env_int", "env_float", "env_list", "env_choice",
               "env_secret", "env_rate"):
    setattr(env, helper, recording(getattr(env, helper)))
import portal.settings as loaded  # noqa: E402
seen["ENV_FILE"] = loaded.ENV_FILE
print(json.dumps(seen, default=list))
"""

# Rows whose default is said in words, not as a literal: where each is proved instead.
SETTINGS_TESTS = "tests/portal/test_settings.py::"
IN_WORDS = {
    "SECRET_KEY": SETTINGS_TESTS + "test_it_refuses_to_start_without_a_secret_key_in_production",
    "SECRET_KEY_FILE": SETTINGS_TESTS + "test_a_secret_key_can_come_from_a_file",
    "DATABASE_URL": SETTINGS_TESTS + "test_without_redis_the_broker_is_embedded",
    "REDIS_URL": SETTINGS_TESTS + "test_without_redis_the_broker_is_embedded",
    "CONFIG_ENCRYPTION_KEYS": "tests/services/test_configs.py::"
    "test_a_secret_under_a_lost_key_is_a_clear_server_error",
    "DEMO_ENDPOINTS": "the value of DEBUG: checked below",
    "CELERY_VISIBILITY_TIMEOUT": "a batch's longest run + 15: checked below",
}


REDIS = {"REDIS_URL": "redis://127.0.0.1:6379/7"}


def load(**environ: str) -> dict:
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR"}
    clean = {k: v for k, v in os.environ.items() if k in keep}
    result = subprocess.run(
        [sys.executable, "-c", RECORDER],
        cwd=BASE,
        # REDIS_URL set: the broker's and the cache's settings are read only then.
        env={**clean, "PORTAL_ENV_FILE": "", "SECRET_KEY": "x" * 60, **REDIS, **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@cache
def production() -> dict:
    return load()


@cache
def development() -> dict:
    return load(DEBUG="true")


def settings_rows() -> list[tuple[list[str], str]]:
    """(variables, default cell) of each row of the README's Settings table."""
    text = (BASE / "README.md").read_text()
    section = text[text.index("\n## Settings") :]
    section = section[: section.index("\n## ", 1)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        rows.append((re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]), cells[1]))
    return rows


def literals(cell: str) -> list[str]:
    """The defaults a cell states before any parenthesis: `60` / `90`, `0.25`, `500`."""
    head = re.split(r"\s\(", cell, maxsplit=1)[0]
    return re.findall(r"`([^`]*)`", head)


def as_read(literal: str, like):
    """The README's literal as the portal's helper would return it."""
    if isinstance(like, bool):
        return {"true": True, "false": False}[literal]
    if isinstance(like, int):
        return int(literal)
    if isinstance(like, float):
        return float(literal)
    if isinstance(like, list) and len(like) == 2 and all(isinstance(x, int) for x in like):
        return [int(part) for part in literal.split("/")]  # a rate: per minute / burst
    if isinstance(like, list):
        return [item.strip() for item in literal.split(",") if item.strip()]
    return literal


def test_the_table_lists_the_settings():
    names = [n for variables, _ in settings_rows() for n in variables]
    assert len(names) > 80 and len(names) == len(set(names))
    assert {"DB_POOL_SIZE", "RATE_LIMIT_API_READ", "LOGIN_LOCK_SECONDS"} <= set(names)


@pytest.mark.parametrize(
    ("variables", "cell"), settings_rows(), ids=lambda v: v[0] if isinstance(v, list) else ""
)
def test_every_default_in_the_readme_is_the_one_the_portal_uses(variables, cell):
    seen = production()
    if variables == ["PORTAL_ENV_FILE"]:  # (the other loads set it empty: no file)
        unset = {k: v for k, v in os.environ.items() if k != "PORTAL_ENV_FILE"}
        code = "import portal.settings as s; print(s.ENV_FILE)"
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=BASE,
            env={**unset, "SECRET_KEY": "x" * 60},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert out.strip().splitlines()[-1] == str(BASE / ".env") and cell == "`./.env`"
        return
    if all(name in IN_WORDS for name in variables):
        return
    stated = literals(cell)
    if not stated:  # "empty", "none", "empty (any) / empty"
        assert re.fullmatch(r"(empty|none)( \(any\))?( / empty)?", cell), (variables, cell)
        for name in variables:
            assert seen[name] in ("", []), (name, seen[name])
        return
    if len(stated) == 1 and len(variables) > 1:
        # `5, 20`: one per variable; else one for the row (`true` for both flags)
        stated = stated[0].split(", ") if ", " in stated[0] else stated * len(variables)
    assert len(stated) == len(variables), (variables, cell)
    for name, literal in zip(variables, stated, strict=True):
        if name.endswith(("_DIR", "STATIC_ROOT")):
            assert seen[name] == str(BASE / literal.removeprefix("./")), (name, seen[name])
            continue
        assert seen[name] == as_read(literal, seen[name]), (name, literal, seen[name])


def test_what_the_table_says_changes_with_debug_does():
    """`true` (`false` with `DEBUG`) and the like: the parenthesis is the DEBUG default."""
    checked = 0
    for variables, cell in settings_rows():
        found = re.search(r"\(`([^`]+)` with `DEBUG`\)", cell)
        if not found:
            continue
        for name in variables:
            value = development()[name]
            assert value == as_read(found.group(1), value), (name, cell, value)
            checked += 1
    assert checked == 6  # the HTTPS redirect, two cookie flags, HSTS and its two flags
    assert development()["DEMO_ENDPOINTS"] is True and production()["DEMO_ENDPOINTS"] is False


def test_the_visibility_timeout_is_a_batchs_longest_run_and_15_seconds():
    longest = settings.HEALTH_BATCH_SECONDS_MAX
    assert production()["CELERY_VISIBILITY_TIMEOUT"] == longest + 15 == 92


def test_settings_said_in_words_are_proved_elsewhere():
    """The rows whose default is a sentence, each with the test that proves it."""
    in_words = {
        name
        for variables, cell in settings_rows()
        for name in variables
        if not literals(cell) and not re.fullmatch(r"(empty|none).*", cell)
    }
    assert in_words <= set(IN_WORDS), in_words - set(IN_WORDS)

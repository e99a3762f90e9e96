"""The `.env` that `make run` writes is read only for what the environment does not set: "the
environment always wins" (docs/dependencies.md, python-dotenv; README "Quick start"). Read by
a fresh process, as a command typed in a second shell reads it."""

import json
import os
import subprocess
import sys

from django.conf import settings

SHOW = (
    "import json; from django.conf import settings as s; "
    "print('SEEN=' + json.dumps([s.DB_POOL_SIZE, s.HEALTH_RAW_RETENTION_DAYS, s.LOG_LEVEL]))"
)


def seen(env_file, **environ: str) -> list:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORTAL_ENV_FILE": str(env_file),
        "PORTAL_VAR_DIR": str(env_file.parent),
        **environ,
    }
    shell = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in shell.stdout.splitlines() if x.startswith("SEEN="))
    return json.loads(line.removeprefix("SEEN="))


def test_the_environment_wins_over_the_env_file_which_fills_in_the_rest(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DEBUG=true\nSECRET_KEY=from-the-file\nDB_POOL_SIZE=2\n"
        "HEALTH_RAW_RETENTION_DAYS=3\nLOG_LEVEL=debug\n"
    )
    assert seen(env_file) == [2, 3, "DEBUG"]  # the file, for what nothing else sets
    assert seen(env_file, DB_POOL_SIZE="7", LOG_LEVEL="warning") == [7, 3, "WARNING"]

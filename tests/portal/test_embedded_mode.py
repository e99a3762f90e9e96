"""The embedded mode (docs/decisions.md): a portal started without REDIS_URL and DATABASE_URL
-- `make run` with nothing installed -- keeps everything under its var directory: a SQLite
file in WAL mode (readers and the one writer together: web, worker and beat share it) whose
write transactions begin IMMEDIATE (writers serialised, so two cannot each add half a cycle),
the filesystem broker's folders (polled every 0.1 s) and the result files. A fresh process,
as `make run` starts one."""

import json
from pathlib import Path

from tests.portal.test_settings import run_manage

READ_THEM = """
import json
from django.conf import settings as s
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    mode = cursor.fetchone()[0]
print(json.dumps({
    "database": str(s.DATABASES["default"]["NAME"]),
    "journal_mode": mode,
    "broker": s.CELERY_BROKER_URL,
    "broker_folder": s.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"],
    "polling_interval": s.CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"],
    "transaction_mode": s.DATABASES["default"]["OPTIONS"]["transaction_mode"],
    "results": s.CELERY_RESULT_BACKEND,
}))
"""


def test_without_urls_the_portal_keeps_its_database_and_results_under_var(tmp_path):
    var = tmp_path / "var"
    started = run_manage(
        "shell",
        "--no-imports",
        "-c",
        READ_THEM,
        DEBUG="true",
        PORTAL_ENV_FILE="",
        PORTAL_VAR_DIR=str(var),
    )
    assert started.returncode == 0, started.stderr
    seen = json.loads(started.stdout)
    assert seen == {
        "database": str(var / "portal.sqlite3"),
        "journal_mode": "wal",
        "transaction_mode": "IMMEDIATE",  # writers serialised: no half of a cycle each
        "broker": "filesystem://",
        "broker_folder": str(var / "broker"),
        "polling_interval": 0.1,  # an idle worker looks for messages every 0.1 s
        "results": f"file://{var / 'results'}",
    }
    assert Path(seen["database"]).is_file()

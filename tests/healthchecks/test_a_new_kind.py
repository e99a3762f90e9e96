"""docs/architecture.md: adding a kind is one module and its name in
``healthchecks/probes/__init__.py`` (imported, and in the list registered), no migration: the
model, the API's schema, the admin, the save-time checks and the engine all read ``KINDS``.

Proved on a copy of the code: one new module (an ``echo`` kind with an option and a target
rule) and its name on those two lines, then the API's OpenAPI document, the admin's form, the
save-time target check, a check saved through the write path and the engine's probe all know
it -- with no other file touched. (The docs said "one module and one line"; it is two.)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import database_url

BASE = Path(__file__).resolve().parent.parent.parent
APPS = tomllib.loads((BASE / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]

ECHO = '''"""A kind made for the test: healthy when its target says the banner."""

from pydantic import BaseModel, Field

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import Failure
from healthchecks.status import ErrorCode


class EchoOptions(BaseModel):
    banner: str = Field("hello", description="What the target must say.")


def target_problem(target: str) -> str | None:
    return None if target.startswith("echo:") else "an echo target starts with echo:"


async def probe_echo(prober, run) -> None:
    said = run.spec.target.removeprefix("echo:")
    if said != run.spec.options.get("banner", "hello"):
        raise Failure(ErrorCode.BAD_BODY, f"said {said!r}")


KIND = Kind(
    name="echo", label="Echo", probe=probe_echo, options=EchoOptions, check_target=target_problem
)
'''

WHAT_THE_PORTAL_KNOWS = """
import asyncio, json
from portal.api import api
from portal.auth import system_actor
from healthchecks import checks
from healthchecks.admin import HealthCheckForm
from healthchecks.models import HealthCheck
from portal.egress import NetworkPolicy
from healthchecks.probes import make_spec, probe, target_errors
from healthchecks.schemas import CheckFieldsIn
from tests.factories import ServiceFactory
from django.db import transaction

document = api.get_openapi_schema()
kinds = document["components"]["schemas"]["CheckKind"]["enum"]
fields = document["components"]["schemas"]["CheckFieldsIn"]["properties"]
choices = [name for name, _ in HealthCheckForm.base_fields["kind"].choices]
admin_fields = sorted(HealthCheckForm.for_kind("echo").base_fields)
refused = target_errors("echo", "http://nope")
policy = NetworkPolicy.from_settings()
healthy = asyncio.run(probe(make_spec(1, "echo", "echo:hello", timeout=1), policy))
unhealthy = asyncio.run(probe(make_spec(1, "echo", "echo:bye", timeout=1), policy))
with transaction.atomic():
    ServiceFactory(name="echoed")
    checks.put_one(
        "echoed", "banner", CheckFieldsIn(kind="echo", target="echo:hi", banner="hi"),
        system_actor("test"),
    )
    stored = HealthCheck.objects.get(service__name="echoed", name="banner")
    saved = [stored.kind, stored.options]
    transaction.set_rollback(True)
print("KNOWN=" + json.dumps({
    "api_kinds": kinds, "api_banner": fields.get("banner", {}).get("description"),
    "admin_choices": choices, "admin_banner": "option_banner" in admin_fields,
    "refused": refused, "probed": [healthy.status.name, unhealthy.status.name, unhealthy.errors],
    "saved": saved,
}))
"""


@pytest.fixture
def copy(tmp_path) -> Path:
    for app in [*APPS, "tests"]:
        shutil.copytree(BASE / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("templates", "static"):
        shutil.copytree(BASE / name, tmp_path / name)
    for name in ("manage.py", "pyproject.toml"):
        shutil.copy(BASE / name, tmp_path)
    return tmp_path


@pytest.mark.django_db
def test_a_new_kind_is_one_module_and_its_name_in_the_probes_package(copy):
    probes = copy / "healthchecks" / "probes"
    (probes / "echo.py").write_text(ECHO)
    init = (probes / "__init__.py").read_text()
    line = "from healthchecks.probes import callables, heartbeat, http, postgres, redis, tcp\n"
    assert (
        line in init
        and "for _module in (http, tcp, postgres, redis, heartbeat, callables):" in init
    )
    # Its name: in the import, and in the list registered.
    init = init.replace(line, line.replace("tcp\n", "tcp, echo\n"))
    init = init.replace(
        "for _module in (http, tcp, postgres, redis, heartbeat, callables):",
        "for _module in (http, tcp, postgres, redis, heartbeat, callables, echo):",
    )
    (probes / "__init__.py").write_text(init)
    changed = subprocess.run(
        ["diff", "-r", "-x", "__pycache__", str(BASE / "healthchecks"), str(copy / "healthchecks")],
        capture_output=True,
        text=True,
    ).stdout
    assert len(re.findall(r"^[<>] ", changed, re.M)) == 4  # two lines out, two in
    assert "Only in" in changed and "echo.py" in changed

    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(copy),
    }
    shell = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", WHAT_THE_PORTAL_KNOWS],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr[-3000:]
    line = next(x for x in shell.stdout.splitlines() if x.startswith("KNOWN="))
    known = json.loads(line.removeprefix("KNOWN="))
    assert "echo" in known["api_kinds"] and known["api_banner"] == "What the target must say."
    assert "echo" in known["admin_choices"] and known["admin_banner"]
    assert known["refused"] == {"target": "an echo target starts with echo:"}
    assert known["probed"][:2] == ["HEALTHY", "UNHEALTHY"]
    assert known["probed"][2] == ["said 'bye'"]
    assert known["saved"] == ["echo", {"banner": "hi"}]

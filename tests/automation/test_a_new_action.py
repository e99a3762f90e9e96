"""docs/architecture.md: adding a kind of rule action is one module and its name in
``automation/actions/__init__.py`` (imported, and in the list registered), no migration: the
API's rule schema, the rules' save-time checks and scopes, the secrets kept apart and the
sender all read ``ACTIONS`` (issue 20, item 3).

Proved on a copy of the code: one new module (a ``stamp`` action that writes a file, with an
option, a save-time check and a secret option) and its name on those two lines; then the
OpenAPI document offers it, a rule with it is refused with the check's reason or saved with
its secret kept apart, and a delivery of it is run by the sender -- no other file touched.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import database_url
from tests.healthchecks.test_a_new_kind import BASE, copy  # noqa: F401 -- the copy fixture

STAMP = '''"""An action made for the test: writes the service's name into a file."""

from pathlib import Path
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict

from automation.actions.kinds import ActionKind


class StampAction(Schema):
    model_config = ConfigDict(extra="forbid")

    type: Literal["stamp"]
    path: str
    token: dict[str, str] = {}


def check(action, path, fields):
    if not action["path"].startswith("/"):
        fields[f"{path}.path"] = "an absolute path"


def run(delivery, message, impacted):
    Path(delivery.action["path"]).write_text(delivery.service.name)
    return True, None, ""


KIND = ActionKind("stamp", StampAction, run, check, secret_options=("token",), calls_out=False)
'''

WHAT_THE_PORTAL_KNOWS = """
import json
from django.utils import timezone
from portal.api import api
from portal.auth import system_actor
from portal.errors import InvalidInput
from automation import notify, rules
from automation.models import Delivery, Rule
from services.models import Service
from tests.factories import ServiceFactory

document = json.dumps(api.get_openapi_schema())
actor = system_actor("test")
service = ServiceFactory(name="stamped")
try:  # committed, as the sender sees it: removed at the end
    try:
        rules.put_rule("bad", rules.RuleIn("down", {}, [{"type": "stamp", "path": "x"}]), actor)
        refused = None
    except InvalidInput as exc:
        refused = exc.fields
    action = {"type": "stamp", "path": PATH, "token": {"k": "s3cret"}}
    rule, _ = rules.put_rule("good", rules.RuleIn("down", {}, [action]), actor)
    shown = rule.actions
    rules.queue_actions(rule, rule.actions, False, timezone.now(), service=service,
                        subject={"message": "m"}, event="check_failing")
    delivery = Delivery.objects.get(rule=rule)
    kind = delivery.kind
    notify.deliver(delivery.id)
    state = Delivery.objects.get(id=delivery.id).state
finally:
    Rule.objects.filter(name__in=["good", "bad"]).delete()
    Service.objects.filter(name="stamped").delete()
print("KNOWN=" + json.dumps({
    "offered": '"stamp"' in document, "refused": refused, "shown": shown,
    "kind": kind, "state": state,
}))
"""


@pytest.mark.django_db(transaction=True)
def test_a_new_action_is_one_module_and_its_name_in_the_actions_package(copy, tmp_path):  # noqa: F811
    actions = copy / "automation" / "actions"
    (actions / "stamp.py").write_text(STAMP)
    init = (actions / "__init__.py").read_text()
    line = "from automation.actions import checklist, lifecycle, notify, rollback_config, webhook\n"
    loop = "for _module in (notify, webhook, lifecycle, checklist, rollback_config):"
    assert line in init and loop in init
    init = init.replace(line, line.replace("webhook\n", "webhook, stamp\n"))
    init = init.replace(loop, loop.replace("rollback_config)", "rollback_config, stamp)"))
    (actions / "__init__.py").write_text(init)
    changed = subprocess.run(
        ["diff", "-r", "-x", "__pycache__", str(BASE / "automation"), str(copy / "automation")],
        capture_output=True,
        text=True,
    ).stdout
    assert len(re.findall(r"^[<>] ", changed, re.M)) == 4  # two lines out, two in
    assert "Only in" in changed and "stamp.py" in changed

    stamped = tmp_path / "stamped.txt"
    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "ENABLE_HEALTH_AUTOMATION": "true",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(copy),
    }
    code = f"PATH = {str(stamped)!r}\n" + WHAT_THE_PORTAL_KNOWS
    shell = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"^KNOWN=(.*)$", shell.stdout, re.M)
    assert found, shell.stdout[-2000:] + shell.stderr[-4000:]
    known = json.loads(found.group(1))
    assert known["offered"]
    assert known["refused"] == {"actions[0].path": "an absolute path"}
    assert known["shown"][0]["token"] == ["k"]  # the secret option kept apart, by name
    assert (known["kind"], known["state"]) == ("stamp", "sent")
    assert stamped.read_text() == "stamped"

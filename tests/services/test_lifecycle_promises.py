"""The README's "Lifecycle" paragraph is the table the API enforces: every move it lists is
accepted, asking for the current status is a no-op (`"changed": false`), and every other move
is a 409 naming the allowed ones -- all 49 pairs, read from the README itself so that the
document and the code cannot drift apart."""

import re
from itertools import product
from pathlib import Path

import pytest
from django.conf import settings

from services.models import LifecycleStatus, LifecycleTransition, Service
from tests.factories import ServiceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def readme_transitions() -> dict[str, set[str]]:
    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    paragraph = text.split("**Lifecycle.**", 1)[1].split("Asking for", 1)[0]
    paragraph = " ".join(paragraph.split())
    moves = {}
    for source, targets in re.findall(r"`(\w+) -> ([\w |]+)`", paragraph):
        moves[source] = {t.strip() for t in targets.split("|")}
    return moves


def test_the_readme_lists_every_status():
    assert set(readme_transitions()) == set(LifecycleStatus.values)


@pytest.mark.parametrize(
    ("source", "target"), list(product(LifecycleStatus.values, LifecycleStatus.values))
)
def test_a_move_is_accepted_exactly_when_the_readme_lists_it(api, source, target):
    ServiceFactory(name="web")
    Service.objects.filter(name="web").update(lifecycle_status=source)
    allowed = readme_transitions()[source]
    recorded = LifecycleTransition.objects.count()
    answer = api.call("POST", "/api/services/web/transitions", {"to": target})
    if target == source:
        assert answer.status_code == 200 and answer.json()["changed"] is False
        assert LifecycleTransition.objects.count() == recorded
    elif target in allowed:
        assert answer.status_code == 200, answer.json()
        assert answer.json()["changed"] is True and answer.json()["lifecycle_status"] == target
    else:
        assert answer.status_code == 409, answer.json()
        error = answer.json()["error"]
        assert error["code"] == "illegal_transition" and set(error["allowed"]) == allowed
        assert Service.objects.get(name="web").lifecycle_status == source

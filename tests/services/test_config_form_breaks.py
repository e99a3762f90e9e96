"""The admin's configuration form under what the round-trip properties did not draw (issue 19,
the breaking trial): property names that look like the form's own path separator, and a
schema that changes while an owner has the form open. Posted over HTTP as a browser posts the
rendered page (tests/services/test_config_form_roundtrip.py's BrowserForm)."""

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from portal.auth import system_actor
from services import config_schema, configs
from tests.services.test_config_form_roundtrip import (
    admin_client,  # noqa: F401 -- a fixture
    edit,
    open_form,
    store,
    stored_configs,
)

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")
EXAMPLES = hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Names a schema may give its properties, chosen to meet the form's "__" between path parts:
# doubled, leading and trailing underscores, the empty name, and whatever an escape would use.
NAMES = st.sampled_from(["a", "b", "a__b", "a_", "_b", "__", "", "~61", "b__"]) | st.text(
    "ab_~", max_size=4
)


def leaves(document, prefix=()) -> dict[tuple, object]:
    """Every leaf of a document by its path (objects descended into)."""
    if not isinstance(document, dict) or not document:
        return {prefix: document}
    found = {}
    for key, value in document.items():
        found.update(leaves(value, (*prefix, key)))
    return found


@st.composite
def clashing_schemas(draw):
    """(schema, document): strings at the top and one level down, under drawn names, each
    stored leaf with a value of its own."""
    schema, document, n = {"type": "object", "properties": {}}, {}, 0
    for name in draw(st.lists(NAMES, min_size=2, max_size=6, unique=True)):
        if draw(st.booleans()):
            schema["properties"][name] = {"type": "string"}
            document[name], n = f"v{n}", n + 1
        else:
            inner = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
            properties = {sub: {"type": "string"} for sub in inner}
            schema["properties"][name] = {"type": "object", "properties": properties}
            document[name] = {}
            for sub in inner:
                document[name][sub], n = f"v{n}", n + 1
    return schema, document


@EXAMPLES
@given(stored=clashing_schemas(), pick=st.integers(0, 100))
def test_every_leaf_has_a_field_of_its_own_whatever_its_name(admin_client, stored, pick):  # noqa: F811
    """A property named "a__b" beside an object "a" holding "b": each is shown and edited on
    its own. Before, both were the field values__a__b: the page showed one of them, and
    editing it wrote the text into both."""
    schema, document = stored
    service, version = store(schema, document, "off")
    page, form = open_form(admin_client, service)
    shown = sorted(v for k, v in form.data.items() if k.startswith("values__"))
    assert shown == sorted(leaves(document).values())  # each stored leaf, once

    names = sorted(n for n in form.data if n.startswith("values__"))
    name = names[pick % len(names)]
    data = dict(form.data)
    data[name], meant = edit(form, name)
    res = admin_client.post(page, data)
    assert res.status_code == 302, res.context["form"].errors if res.context else res
    before, after = leaves(configs.reveal(version)), leaves(configs.reveal(
        configs.current_version(service)))  # fmt: skip
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert len(changed) == 1 and after[changed.pop()] == meant


LEGACY = {"type": "object", "properties": {
    "code": {"type": "string"}, "old": {"type": "string"}, "n": {"type": "integer"}}}  # fmt: skip
RETYPED = {"type": "object", "properties": {
    "code": {"type": "integer"}, "n": {"type": "integer"}}}  # fmt: skip


def test_a_schema_changed_while_the_form_is_open_changes_no_field_nobody_touched(
    admin_client,  # noqa: F811
):
    """The owner opens the form; a pipeline then stores a schema where `code` is an integer
    and `old` is no longer described. Saving the form unchanged stored a version with
    code 5 (not "5") and without `old`; changing `n` alone did the same. Now the form is
    read as it was opened (the schema version it was drawn from), so nothing else moves."""
    service, version = store(LEGACY, {"code": "5", "old": "keep me", "n": 1}, "lenient")
    page, form = open_form(admin_client, service)
    configs.put_schema(service.name, RETYPED, ACTOR)

    res = admin_client.post(page, form.data, follow=True)
    assert "Nothing changed" in res.content.decode()
    assert configs.current_version(service).version == version.version

    data = {**form.data, "values__n": "2"}
    assert admin_client.post(page, data).status_code == 302
    new = configs.current_version(service)
    assert new.version == version.version + 1
    assert configs.reveal(new) == {"code": "5", "old": "keep me", "n": 2}


@EXAMPLES
@given(first=stored_configs(), second=stored_configs(), pick=st.integers(0, 100))
def test_whatever_the_schema_becomes_meanwhile_a_save_changes_only_what_was_edited(
    admin_client,  # noqa: F811
    first,
    second,
    pick,
):
    """The same over generated schemas: a form opened on one schema and saved after another
    was stored stores nothing when unchanged, and one field changed changes that field alone
    (the new schema's defaults merged in, as every save of the configuration does)."""
    schema, document, level = first
    service, version = store(schema, document, level)
    page, form = open_form(admin_client, service)
    # The secrets stay secrets: a mask sent back keeps the stored secret only where the
    # current schema still says secret (a schema that drops one is another matter).
    kept = {k: v for k, v in schema["properties"].items() if v.get("writeOnly")}
    later = {**second[0], "properties": {**second[0]["properties"], **kept}}
    configs.put_schema(service.name, later, ACTOR)

    res = admin_client.post(page, form.data)
    assert res.status_code == 302, res.context["form"].errors if res.context else res
    assert configs.current_version(service).version == version.version

    names = sorted(n for n in form.data if n.startswith("values__"))
    name = names[pick % len(names)]
    data = dict(form.data)
    data[name], meant = edit(form, name)
    res = admin_client.post(page, data)
    assert res.status_code == 302, res.context["form"].errors if res.context else res
    expected = json.loads(json.dumps(configs.reveal(version)))
    node = expected
    path = name.split("__")[1:]  # stored_configs' names hold no "__"
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = meant
    normalised, _ = config_schema.normalise(later)
    new = configs.current_version(service)
    assert new.version == version.version + 1
    assert configs.reveal(new) == config_schema.merge_defaults(normalised, expected)

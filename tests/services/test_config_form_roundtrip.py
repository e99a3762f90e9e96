"""The admin's configuration form is a round trip (issue 19): a form opened and saved
unchanged stores nothing, and one field changed changes that field alone. Over generated
schemas and stored documents (every type, defaults on the other side of the stored value,
values off their declared type, undescribed keys), posted as a browser posts the rendered
page."""

import json
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from portal.auth import system_actor
from services import config_schema, configs
from services.models import ConfigVersion, Service
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")


class BrowserForm(HTMLParser):
    """What a browser submits for the page's form: every named input's value, a select's
    selected option (its first when none is), a textarea's text without the one line break
    that follows its start tag."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.data: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.choices: dict[str, list[str]] = {}
        self._select = self._textarea = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "checkbox"):
            self.data[name] = attrs.get("value") or ""
            self.kinds[name] = attrs.get("type", "text")
        elif tag == "select" and name:
            self._select = name
            self.kinds[name], self.choices[name] = "select", []
        elif tag == "option" and self._select:
            value = attrs.get("value", "")
            self.choices[self._select].append(value)
            if "selected" in attrs or self._select not in self.data:
                self.data[self._select] = value
        elif tag == "textarea" and name:
            self._textarea, self.data[name], self.kinds[name] = name, "", "textarea"

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            text = self.data[self._textarea]
            self.data[self._textarea] = text[1:] if text.startswith("\n") else text
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data


# --- Generated schemas and documents ---------------------------------------------------------

# PostgreSQL's jsonb cannot hold NUL; surrogates are not text.
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
NUMBER = st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False)


def typed(kind: str, default=None):
    """A schema of one ``type``, with a drawn default now and then."""
    optional = {"default": default} if default is not None else {}
    return st.fixed_dictionaries({"type": st.just(kind)}, optional=optional)


PORT_AND_TLS = {"port": {"type": "integer", "default": 5432}, "tls": {"type": "boolean"}}
SECRET_TEXT = TEXT.filter(lambda t: t and t != configs.MASK)
MIXED = [1, "1", True, None]

# kind -> (schema strategy, value strategy)
KINDS = {
    "boolean": (typed("boolean", st.booleans()), st.booleans()),
    "integer": (typed("integer", st.integers(0, 9)), st.integers(-(10**15), 10**15)),
    "number": (typed("number", st.just(1e-07)), NUMBER | st.just(1e-07)),
    "string": (typed("string", TEXT.filter(bool)), TEXT | st.sampled_from(["", "zwei\nZeilen"])),
    "nullable": (st.just({"type": ["string", "null"]}), st.none() | TEXT),
    "int_enum": (
        st.just({"type": "integer", "enum": [1, 2, 3], "default": 2}),
        st.sampled_from([1, 3]),
    ),
    "text_enum": (st.just({"enum": ["ein", "zwei", "ü"]}), st.sampled_from(["ein", "zwei", "ü"])),
    "mixed_enum": (st.just({"enum": MIXED}), st.sampled_from(MIXED)),
    "array": (
        st.just({"type": "array", "items": {"type": "integer"}}),
        st.lists(st.integers(), max_size=4),
    ),
    "free": (typed("object"), st.dictionaries(TEXT, JSON, max_size=3)),
    "secret": (st.just({"type": "string", "writeOnly": True}), SECRET_TEXT),
    "object": (
        st.just({"type": "object", "properties": PORT_AND_TLS}),
        st.fixed_dictionaries(
            {"port": st.integers(1, 9)}, optional={"tls": st.booleans(), "x": JSON}
        ),
    ),
}
EXAMPLES = hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def stored_configs(draw):
    """(schema, document, level): a schema with a field of each drawn kind, and a document
    with a value for some of them -- now and then one off its declared type (stored at level
    off or lenient, as an owner may) -- and keys the schema does not describe."""
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=7))
    level = draw(st.sampled_from(["off", "lenient"]))
    schema, document = {"type": "object", "properties": {}}, {}
    for i, kind in enumerate(kinds):
        name = f"f{i}_{kind}"
        spec_strategy, value_strategy = KINDS[kind]
        schema["properties"][name] = draw(spec_strategy)
        if draw(st.booleans()) or kind == "secret":
            off_type = kind not in ("secret", "object") and draw(st.integers(0, 5)) == 0
            document[name] = draw(JSON if off_type else value_strategy)
    if draw(st.booleans()):
        document["undescribed"] = draw(JSON)
    return schema, document, level


def store(schema: dict, document: dict, level: str) -> tuple[Service, ConfigVersion]:
    service = ServiceFactory(config_validation_level=level)
    configs.put_schema(service.name, schema, ACTOR)
    configs.publish(service.name, document, 0, ACTOR)
    return service, configs.current_version(service)


def open_form(client, service) -> tuple[str, BrowserForm]:
    page = f"/admin/services/service/{service.pk}/config/"
    res = client.get(page)
    assert res.status_code == 200
    return page, BrowserForm(res.content.decode())


def edit(form: BrowserForm, name: str) -> tuple[str, object]:
    """A new text for the field as a person would type or pick it, and the value it means
    (a select of strings offers the strings, any other select their JSON text)."""
    kind, old = form.kinds[name], form.data[name]
    if kind == "number":
        return ("8", 8) if old == "7" else ("7", 7)
    if kind == "select":
        choice = next(o for o in form.choices[name] if o not in ("", old))
        return choice, choice if name.endswith("text_enum") else json.loads(choice)
    if kind == "password":
        return "a-new-secret", "a-new-secret"
    if kind == "textarea":
        return '["changed", 1]', ["changed", 1]
    return old + "x", old + "x"


def fields(form: BrowserForm) -> dict[str, str]:
    return {k: v for k, v in form.data.items() if k != "csrfmiddlewaretoken"}


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stored=stored_configs())
def test_a_form_saved_unchanged_stores_nothing(admin_client, stored):
    service, version = store(*stored)
    page, form = open_form(admin_client, service)
    res = admin_client.post(page, form.data)
    assert res.status_code == 302, res.context["form"].errors if res.context else res
    assert configs.current_version(service).version == version.version
    # And the page still shows exactly what is stored.
    _, again = open_form(admin_client, service)
    assert fields(again) == fields(form)


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stored=stored_configs(), pick=st.integers(0, 100))
def test_one_field_changed_changes_that_field_alone(admin_client, stored, pick):
    schema, document, level = stored
    service, version = store(schema, document, level)
    page, form = open_form(admin_client, service)
    names = sorted(n for n in form.data if n.startswith("values__"))
    name = names[pick % len(names)]
    data = dict(form.data)
    data[name], meant = edit(form, name)
    res = admin_client.post(page, data)
    assert res.status_code == 302, res.context["form"].errors if res.context else res

    new = configs.current_version(service)
    assert new.version == version.version + 1
    path = name.split("__")[1:]
    before = configs.reveal(version)
    expected = json.loads(json.dumps(before))
    node = expected
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = meant
    normalised, _ = config_schema.normalise(schema)
    assert configs.reveal(new) == config_schema.merge_defaults(normalised, expected)

"""What the pages give a keyboard and a screen reader (issue 28, item 11), through Django's
full stack: a skip link first, leading to the main landmark; a level-one heading on the wall;
each checklist button named with its item, its mark's state told, and a tick that says what
changed in the page's live region while keeping its control's id (htmx gives the focus back to
it); the overview's filters that say how many services they found, and its refresh that says
nothing; health colours that keep their text readable. The browser's side of each:
tests/system/browser/test_accessibility.py (axe-core, the keyboard)."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from checklists import runs
from checklists.models import ChecklistTemplate
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db

CSS = Path(__file__).resolve().parents[2] / "static" / "css" / "app.css"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class Elements(HTMLParser):
    """Every element of a page in document order, with its attributes, its text and the
    names of the elements it sits in."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = {
            "tag": tag,
            "attrs": dict(attrs),
            "text": "",
            "inside": [e["tag"] for e in self._open],
        }
        self.found.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def all(self, tag: str, **attrs) -> list[dict]:
        return [
            e
            for e in self.found
            if e["tag"] == tag and all(e["attrs"].get(k) == v for k, v in attrs.items())
        ]


def focusable(element: dict) -> bool:
    tag, attrs = element["tag"], element["attrs"]
    if "tabindex" in attrs:
        return int(attrs["tabindex"]) >= 0
    if tag == "a":
        return "href" in attrs
    if tag == "input":
        return attrs.get("type") != "hidden"
    return tag in {"button", "select", "textarea"}


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    "path", ["/", "/map/", "/status/", "/config/drift", "/maintenance/", "/maintenance/history/"]
)
def test_the_first_focusable_element_is_a_skip_link_to_the_main_landmark(client, bob, path):
    client.force_login(bob)
    page = Elements(client.get(path).content.decode())
    first = next(e for e in page.found if focusable(e))
    assert (first["tag"], first["attrs"].get("href"), words(first["text"])) == (
        "a",
        "#content",
        "Skip to content",
    )
    assert [m["attrs"].get("id") for m in page.all("main")] == ["content"]


def test_the_login_page_has_the_skip_link_too(client):
    page = Elements(client.get("/accounts/login/").content.decode())
    first = next(e for e in page.found if focusable(e))
    assert first["attrs"].get("href") == "#content"


def test_the_wall_has_one_level_one_heading_inside_its_main_landmark(client, bob):
    client.force_login(bob)
    page = Elements(client.get("/wall/").content.decode())
    (heading,) = page.all("h1")
    assert "main" in heading["inside"] and words(heading["text"]).startswith("Problems")
    # The polled fragment is the list alone: the heading is not swapped every 10 s.
    fragment = client.get("/wall/", headers={"HX-Request": "true"}).content.decode()
    assert "<h1" not in fragment and 'id="problems"' in fragment


def test_each_checklist_button_is_named_with_its_item_and_each_mark_tells_its_state(client, alice):
    client.force_login(alice)
    page = Elements(client.get("/maintenance/").content.decode())
    forms = [f for f in page.all("form") if "tick" in f["attrs"].get("class", "")]
    assert forms
    buttons = [b for b in page.all("button") if b["attrs"].get("id", "").startswith("tick-")]
    assert len(buttons) == len(forms)
    items = [words(s["text"]) for s in page.all("span") if s["attrs"].get("class") == "text"]
    names = [b["attrs"]["aria-label"] for b in buttons]
    assert names == [f"Tick: {item}" for item in items]
    # The visible word starts the name (what a speech user says is what the name holds).
    assert all(words(b["text"]) == "Tick" for b in buttons)
    assert len({b["attrs"]["id"] for b in buttons}) == len(buttons)
    marks = [s for s in page.all("span") if s["attrs"].get("class") == "mark"]
    assert {(m["attrs"].get("role"), m["attrs"].get("aria-label")) for m in marks} == {
        ("img", "not ticked")
    }
    assert all("aria-hidden" not in m["attrs"] for m in marks)


def test_a_tick_says_what_changed_and_keeps_its_controls_ids(client, alice):
    client.force_login(alice)
    template = ChecklistTemplate.objects.get(period="daily")
    run = runs.run_for(template)
    item = template.items.get(text="Check for predictive alerts")
    page = client.get("/maintenance/").content.decode()
    live = Elements(page).all("div", id="announcer")
    assert len(live) == 1 and live[0]["attrs"]["role"] == "status" and not live[0]["text"].strip()
    total = template.items.count()

    answer = client.post(
        f"/maintenance/runs/{run.id}/items/{item.id}/tick",
        {"done": "1"},
        headers={"HX-Request": "true"},
    )
    fragment = Elements(answer.content.decode())
    (said,) = fragment.all("p", id="announcer")
    assert said["attrs"]["hx-swap-oob"] == "innerHTML"  # into the live region, which stays
    assert words(said["text"]) == f"Ticked: {item.text}. {run}: 1 of {total} done."
    # The same ids as on the page: htmx puts the focus back on the control that had it.
    (button,) = fragment.all("button", id=f"tick-{run.id}-{item.id}")
    assert button["attrs"]["aria-label"] == f"Untick: {item.text}"
    assert fragment.all("input", id=f"note-{run.id}-{item.id}")
    (mark,) = [s for s in fragment.all("span") if s["attrs"].get("class") == "mark"]
    assert mark["attrs"]["aria-label"] == "ticked"

    answer = client.post(
        f"/maintenance/runs/{run.id}/items/{item.id}/tick",
        {"done": "0"},
        headers={"HX-Request": "true"},
    )
    (said,) = Elements(answer.content.decode()).all("p", id="announcer")
    assert words(said["text"]) == f"Unticked: {item.text}. {run}: 0 of {total} done."


def test_a_filter_says_how_many_services_match_and_the_refresh_says_nothing(client, bob):
    team = TeamFactory(name="edge")
    for name in ("gateway", "cdn", "gatekeeper"):
        ServiceFactory(name=name, team=team)
    ServiceFactory(name="ledger")
    client.force_login(bob)
    page = Elements(client.get("/").content.decode())
    assert page.all("div", id="announcer", role="status")
    assert not page.all("p", id="announcer")  # nothing to say on arrival

    def said(query: str, trigger: str) -> list[str]:
        answer = client.get(
            f"/?{query}", headers={"HX-Request": "true", "HX-Trigger": trigger}
        ).content.decode()
        return [words(p["text"]) for p in Elements(answer).all("p", id="announcer")]

    assert said("q=gate", "service-filters") == ["2 services match."]
    assert said("q=ledger", "service-filters") == ["1 service matches."]
    assert said("q=nothing-like-it", "service-filters") == ["0 services match."]
    assert said("team=edge", "service-filters") == ["3 services match."]
    assert said("team=edge", "service-table") == []  # the table's own refresh


def test_the_health_colours_keep_their_text_readable_in_both_schemes():
    """The text on each health colour -- white on the four states and dark on unknown's light
    grey (light scheme), dark on all five (dark scheme) -- is at least 4.5:1 from it, as WCAG
    asks of text; the keys and the map's names take those text colours."""
    css = CSS.read_text()
    dark_at = css.index("@media (prefers-color-scheme: dark)")

    def variables(text: str) -> dict[str, str]:
        return dict(re.findall(r"--(st-\w+|on-st(?:-unknown)?):\s*(#[0-9a-fA-F]{6})", text))

    light, dark = variables(css[:dark_at]), variables(css[dark_at:])
    states = ["healthy", "degraded", "unhealthy", "maintenance", "unknown"]
    for scheme in (light, dark):
        assert set(scheme) == {f"st-{w}" for w in states} | {"on-st", "on-st-unknown"}
        for word in states:
            text = scheme["on-st-unknown" if word == "unknown" else "on-st"]
            ratio = contrast(scheme[f"st-{word}"], text)
            assert ratio >= 4.5, (word, scheme[f"st-{word}"], text, round(ratio, 2))
    assert re.search(r"\.legend \.key \{[^}]*color: var\(--on-st\)", css)
    assert ".legend .key.st-unknown { color: var(--on-st-unknown); }" in css
    assert re.search(r"svg\.map \.node text \{[^}]*fill: var\(--on-st\)", css)
    assert "svg.map .node rect.st-unknown + text { fill: var(--on-st-unknown); }" in css
    for word in states:
        assert f".st-{word} {{ fill: var(--st-{word}); background: var(--st-{word}); }}" in css


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two sRGB colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_measure_agrees_with_axe():
    """The figures the issue quoted from axe-core for the old colours under white text (axe
    cuts a ratio to two decimals)."""
    measured = {c: int(contrast(c, "#ffffff") * 100) / 100 for c in OLD_COLOURS}
    assert measured == OLD_COLOURS


# The health colours before issue 28, item 11, and what axe-core measured under white text.
OLD_COLOURS = {"#b8bfcc": 1.84, "#d99a1e": 2.44, "#3a9d5d": 3.4, "#6b83b3": 3.8}

"""The site's pages in a real browser: login, the overview and its htmx filters, logout, the
admin and the API docs, all under the enforced Content Security Policy."""

import re
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from playwright.sync_api import expect

from services.models import Dependency, Service
from tests.system.browser.support import browser_test, log_in

pytestmark = browser_test


def expect_rows(page, names: list[str]) -> None:
    """The overview's table shows these services, top to bottom (waiting for a swap)."""
    expect(page.locator("#service-table tbody tr td:first-child strong")).to_have_text(names)
    expect(page.locator("#service-count")).to_have_text(str(len(names)))


def filters_of(url: str) -> dict[str, str]:
    """The filters a URL of the overview holds (htmx also sends the empty fields, which mean
    "any")."""
    parts = urlsplit(url)
    assert parts.path == "/", url
    return {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if v}


def expect_filters(page, filters: dict[str, str]) -> None:
    """The page's URL comes to hold exactly these filters (htmx pushes it after the swap)."""
    page.wait_for_url(lambda url: filters_of(url) == filters)


def pick_autocomplete(page, select_id: str, name: str) -> None:
    """Choose ``name`` in the admin's select2 autocomplete that stands for ``<select id=...>``."""
    page.locator(f"#{select_id} + .select2 .select2-selection").click()
    page.locator(".select2-container--open .select2-search__field").fill(name[:3])
    option = page.locator(".select2-results__option", has_text=re.compile(rf"^{name}$"))
    expect(option).to_have_count(1)  # the admin's autocomplete view answered
    option.click()
    rendered = page.locator(f"#{select_id} + .select2 .select2-selection__rendered")
    expect(rendered).to_have_attribute("title", name)


def test_static_assets_load_under_the_csp(page, live_server):
    response = page.goto("/accounts/login/")
    assert response.status == 200
    assert "nonce-" in response.headers["content-security-policy"]
    # The stylesheet applied, and the vendored htmx ran (its <script> carries the nonce).
    expect(page.locator(".topbar")).to_have_css("background-color", "rgb(29, 35, 48)")
    assert page.evaluate("() => window.htmx && window.htmx.version") == "2.0.11"


def test_a_csp_violation_is_caught(page, live_server, page_problems):
    """The guard every test relies on: a script without the nonce is blocked and reported."""
    page.goto("/accounts/login/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__injected = true";
            document.body.append(script);
        }"""
    )
    assert page.evaluate("() => window.__injected") is None
    for _ in range(50):  # the violation is reported asynchronously
        if page_problems.problems:
            break
        page.wait_for_timeout(100)
    problems = page_problems.take()
    assert any("CSP violation: script-src-elem blocked inline" in p for p in problems), problems


def test_login_then_overview_lists_services(page, live_server, user, registry_data):
    page.goto("/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")

    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("wrong password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Your username and password did not match.")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    log_in(page, "carol")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Services")).to_be_visible()
    expect(page.locator(".topbar .who")).to_have_text("carol")
    expect_rows(page, ["auth", "cdn-purger", "gateway", "ledger-db", "payments"])

    gateway = page.locator("tr[data-service=gateway]")
    expect(gateway.locator("td").nth(1)).to_have_text("edge")
    expect(gateway.locator(".badge.lifecycle")).to_have_text("degraded")
    expect(gateway.locator(".badge.lifecycle")).to_have_class(re.compile(r"\blifecycle-degraded\b"))
    # No check has run yet: health is unknown, apart from the lifecycle.
    expect(gateway.locator(".badge.health")).to_have_text("unknown")
    expect(page.locator("tr[data-service=ledger-db] .badge.lifecycle")).to_have_text("registered")
    expect(page.locator("tr[data-service=cdn-purger] .badge.lifecycle")).to_have_text("stopped")

    payments = page.locator("tr[data-service=payments]")
    expect(payments.locator("td").nth(1)).to_have_text("core")
    expect(payments.locator(".badge.lifecycle")).to_have_text("running")
    expect(payments.locator(".critical")).to_have_text("critical")
    expect(payments.locator(".dep-hard")).to_have_text("auth")
    expect(payments.locator(".dep-soft")).to_have_text("ledger-db")
    expect(payments.locator(".tag")).to_have_text("pci")
    # Non-admins get no link to the admin.
    expect(page.locator(".topbar nav a")).to_have_text(
        ["Services", "Map", "Drift", "Status", "Maintenance", "API"]
    )

    page.screenshot(path=Path(tempfile.gettempdir()) / "overview.png", full_page=True)


def test_filters_narrow_the_table_through_htmx(page, live_server, user, registry_data):
    log_in(page, "carol")
    expect_rows(page, ["auth", "cdn-purger", "gateway", "ledger-db", "payments"])
    # A full page load would wipe this.
    page.evaluate("() => { window.__noReload = 'still here'; }")

    def filtered(action) -> None:
        """Run ``action``; it must cause an htmx request answered with the table alone."""
        with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true") as info:
            action()
        response = info.value
        assert response.status == 200
        assert response.request.method == "GET"
        body = response.text()
        assert re.match(r'<section id="service-table"[ >]', body.lstrip())
        assert "<html" not in body

    filtered(lambda: page.get_by_label("Team").select_option("edge"))
    expect_filters(page, {"team": "edge"})
    expect_rows(page, ["cdn-purger", "gateway"])

    filtered(lambda: page.get_by_label("Lifecycle status").select_option("degraded"))
    expect_filters(page, {"team": "edge", "status": "degraded"})
    expect_rows(page, ["gateway"])

    filtered(lambda: page.get_by_label("Team").select_option(""))
    expect_filters(page, {"status": "degraded"})
    expect_rows(page, ["gateway"])
    filtered(lambda: page.get_by_label("Lifecycle status").select_option(""))
    expect_filters(page, {})
    expect_rows(page, ["auth", "cdn-purger", "gateway", "ledger-db", "payments"])

    # Typing searches once the typist pauses.
    search = page.get_by_label("Search by name")
    filtered(lambda: search.press_sequentially("pay"))
    expect_filters(page, {"q": "pay"})
    expect_rows(page, ["payments"])

    search.clear()
    filtered(lambda: search.press_sequentially("no-such-service"))
    expect_filters(page, {"q": "no-such-service"})
    expect(page.locator("#service-table .empty")).to_have_text("No service matches.")
    expect(page.locator("#service-count")).to_have_text("0")
    expect(search).to_be_focused()  # the swap did not interrupt typing

    assert page.evaluate("() => window.__noReload") == "still here"

    # The pushed URL is a real page: loading it shows the same filter, already selected.
    page.goto("/?team=edge&status=degraded")
    expect(page.get_by_label("Team")).to_have_value("edge")
    expect(page.get_by_label("Lifecycle status")).to_have_value("degraded")
    expect_rows(page, ["gateway"])


def test_back_restores_the_filter_controls_too(page, live_server, user, registry_data):
    log_in(page, "carol")
    page.get_by_label("Search by name").press_sequentially("pay")
    expect_filters(page, {"q": "pay"})
    page.get_by_label("Team").select_option("core")
    expect_filters(page, {"q": "pay", "team": "core"})

    page.go_back()
    expect_filters(page, {"q": "pay"})
    expect_rows(page, ["payments"])
    # The controls must say what the table shows, or the next change silently drops "pay".
    expect(page.get_by_label("Team")).to_have_value("")
    expect(page.get_by_label("Search by name")).to_have_value("pay")


def test_back_from_another_page_shows_the_whole_overview(page, live_server, user, registry_data):
    log_in(page, "carol")
    page.get_by_label("Team").select_option("edge")
    expect_filters(page, {"team": "edge"})
    expect_rows(page, ["cdn-purger", "gateway"])

    page.locator(".topbar nav").get_by_role("link", name="API").click()
    expect(page).to_have_url(f"{live_server.url}/api/docs")
    page.go_back()
    expect_filters(page, {"team": "edge"})
    expect(page.locator(".topbar")).to_be_visible()
    expect(page.get_by_label("Team")).to_have_value("edge")
    expect_rows(page, ["cdn-purger", "gateway"])


def test_back_after_a_history_cache_miss_shows_the_whole_overview(
    page, live_server, user, registry_data
):
    log_in(page, "carol")
    page.get_by_label("Team").select_option("edge")
    expect_filters(page, {"team": "edge"})
    page.get_by_label("Lifecycle status").select_option("degraded")
    expect_filters(page, {"team": "edge", "status": "degraded"})
    # What happens when htmx has no snapshot to restore (the site keeps none, and session
    # storage may be unavailable): Back must still show the whole page for that URL.
    page.evaluate("() => sessionStorage.removeItem('htmx-history-cache')")
    page.go_back()
    expect_filters(page, {"team": "edge"})
    expect_rows(page, ["cdn-purger", "gateway"])
    expect(page.locator(".topbar")).to_be_visible()
    expect(page.locator("#service-filters")).to_be_visible()


def test_logout_returns_to_the_login_page(page, live_server, user):
    log_in(page, "carol")
    expect(page).to_have_url(f"{live_server.url}/")

    with page.expect_navigation():
        page.locator(".topbar").get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator(".topbar .who")).to_have_count(0)

    page.goto("/")  # the session is gone
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")


def test_admin_service_changelist_and_search(page, live_server, superuser, registry_data):
    log_in(page, "root")
    page.locator(".topbar nav").get_by_role("link", name="Admin").click()
    expect(page).to_have_url(f"{live_server.url}/admin/")

    page.get_by_role("link", name="Services", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/services/service/")
    result_rows = page.locator("#result_list tbody tr")
    expect(result_rows).to_have_count(5)
    expect(page.locator("#result_list tbody th a")).to_have_text(
        ["auth", "cdn-purger", "gateway", "ledger-db", "payments"]
    )

    page.locator("#searchbar").fill("gate")
    with page.expect_navigation():
        page.locator("#searchbar").press("Enter")
    expect(page).to_have_url(f"{live_server.url}/admin/services/service/?q=gate")
    expect(result_rows).to_have_count(1)
    expect(result_rows.first.locator("th a")).to_have_text("gateway")
    expect(page.locator(".paginator")).to_contain_text("1 service")


def test_admin_adds_a_service_with_dependencies(page, live_server, superuser, registry_data):
    log_in(page, "root", path="/admin/services/service/add/")
    expect(page).to_have_url(f"{live_server.url}/admin/services/service/add/")
    page.get_by_label("Name:", exact=True).fill("billing")
    page.get_by_label("Team:").select_option(label="core")
    page.get_by_label("Deployed version:").fill("0.1.0")

    # The dependency inline: its "depends on" is a select2 autocomplete.
    pick_autocomplete(page, "id_dependency_links-0-depends_on", "payments")
    expect(page.locator("#id_dependency_links-0-depends_on")).to_have_value(
        str(Service.objects.get(name="payments").pk)
    )
    page.locator("#id_dependency_links-0-kind").select_option("soft")
    # "Add another" makes a second row whose autocomplete works too.
    page.locator("#dependency_links-group .add-row a").click()
    pick_autocomplete(page, "id_dependency_links-1-depends_on", "auth")

    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/services/service/")
    expect(page.locator(".messagelist .success")).to_contain_text("billing")

    billing = Service.objects.get(name="billing")
    assert billing.team.name == "core"
    assert billing.deployed_version == "0.1.0"
    assert sorted(
        Dependency.objects.filter(service=billing).values_list("depends_on__name", "kind")
    ) == [("auth", "hard"), ("payments", "soft")]


def test_admin_adds_a_dependency(page, live_server, superuser, registry_data):
    log_in(page, "root", path="/admin/services/dependency/add/")
    expect(page).to_have_url(f"{live_server.url}/admin/services/dependency/add/")
    pick_autocomplete(page, "id_service", "gateway")
    pick_autocomplete(page, "id_depends_on", "ledger-db")
    page.get_by_label("Kind:").select_option("soft")

    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/services/dependency/")
    expect(page.locator(".messagelist .success")).to_be_visible()
    expect(page.locator("#result_list tbody tr")).to_have_count(4)

    assert sorted(
        Dependency.objects.filter(service__name="gateway").values_list("depends_on__name", "kind")
    ) == [("auth", "hard"), ("ledger-db", "soft")]

    # The overview shows the new dependency.
    page.goto("/?q=gateway")
    expect(page.locator("tr[data-service=gateway] .dep-soft")).to_have_text("ledger-db")


def test_admin_dependency_form_refuses_a_cycle(page, live_server, superuser, registry_data):
    log_in(page, "root", path="/admin/services/dependency/add/")
    pick_autocomplete(page, "id_service", "ledger-db")  # payments already needs ledger-db
    pick_autocomplete(page, "id_depends_on", "payments")

    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/services/dependency/add/")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".errorlist.nonfield")).to_contain_text("dependency cycle")
    assert not Dependency.objects.filter(service__name="ledger-db").exists()


def test_api_docs_render_the_operations(page, live_server, user):
    log_in(page, "carol")
    response = page.goto("/api/docs")
    assert response.status == 200
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    assert "/api/services" in operations.all_inner_texts()
    expect(page.locator(".opblock-tag-section").first).to_be_visible()

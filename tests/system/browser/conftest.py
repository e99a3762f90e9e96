"""Real-browser tests: Debian's Chromium, driven through Playwright's sync API, against the site
served by pytest-django's ``live_server``.

Every page a test opens is watched: a console error, an uncaught exception or a Content Security
Policy violation fails the test (the site enforces ``SECURE_CSP``; its pages and the admin must
work under it).
"""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from portal.auth import system_actor
from services import lifecycle, registry
from services.schemas import ManifestIn
from tests.system.browser.support import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium's own connections are refused by the
# machine's closed network and show up as noise.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000

# Reported by the page itself, so that the failure says which directive blocked what.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`
    + ` (${e.sourceFile || document.location.href}:${e.lineNumber})`);
});
"""


# One browser for all the browser tests. Package scope (this package, sub-packages included)
# rather than session scope: the browser closes right after the last browser test, so that
# what it holds (an asyncio loop marked running in this thread, the variable below) does not
# outlive the browser tests into the rest of the suite, where pytest-django runs the tests
# without a database after the transactional ones.
@pytest.fixture(scope="package")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run .ci/install-chromium to install Debian's Chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, which makes Django
    # refuse ORM calls (SynchronousOnlyOperation) from the tests and from the database flush
    # between them. The calls are really synchronous, so allow them while the browser lives.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class PageProblems:
    """Console errors, uncaught exceptions and CSP violations seen by one test's pages."""

    def __init__(self):
        self.problems: list[str] = []

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        self.problems.append(f"console error: {message.text} [{where}]")

    def on_page_error(self, error) -> None:
        self.problems.append(f"uncaught exception: {error}")

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems

    def assert_none(self) -> None:
        problems = self.take()
        assert not problems, "the browser reported:\n" + "\n".join(problems)


@pytest.fixture
def page_problems():
    return PageProblems()


@pytest.fixture
def page(browser, live_server, page_problems):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(_CSP_LISTENER)
    page = context.new_page()
    page.on("console", page_problems.on_console)
    page.on("pageerror", page_problems.on_page_error)
    yield page
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a browser test (in its call phase, not as a teardown error) if any of its pages
    reported a problem that the test did not check for itself."""
    result = yield
    problems = item.funcargs.get("page_problems")
    if problems is not None:
        problems.assert_none()
    return result


@pytest.fixture
def role_groups(transactional_db):
    """The role groups with their permissions, made by the function their migration runs:
    the flush between live-server tests empties them and, with live_server, pytest-django's
    serialized rollback does not bring them back."""
    from django.apps import apps

    from portal.roles import grant_role_permissions

    grant_role_permissions(apps)


@pytest.fixture
def user(transactional_db):
    return User.objects.create_user("carol", "carol@example.invalid", PASSWORD)


@pytest.fixture
def superuser(transactional_db):
    return User.objects.create_superuser("root", "root@example.invalid", PASSWORD)


@pytest.fixture
def registry_data(transactional_db):
    """Two teams and five services in several lifecycle states."""
    manifest = ManifestIn.model_validate(
        {
            "teams": [{"name": "core"}, {"name": "edge", "display_name": "Edge"}],
            "services": [
                {
                    "name": "payments",
                    "team": "core",
                    "is_critical": True,
                    "deployed_version": "1.4.2",
                    "tags": ["pci"],
                    "dependencies": ["auth", {"service": "ledger-db", "kind": "soft"}],
                },
                {"name": "auth", "team": "core"},
                {"name": "ledger-db", "team": "core"},
                {"name": "gateway", "team": "edge", "dependencies": ["auth"]},
                {"name": "cdn-purger", "team": "edge"},
            ],
        }
    )
    actor = system_actor("browser-tests")
    registry.apply_manifest(manifest, actor)
    for name, path in {  # dependencies first: a service runs only while they do
        "auth": ["running"],
        "payments": ["running"],
        "gateway": ["running", "degraded"],
        "cdn-purger": ["stopped"],
    }.items():
        for status in path:
            lifecycle.transition(name, status, "browser test", actor)
    return manifest

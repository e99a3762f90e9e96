"""Helpers shared by the browser tests (fixtures live in conftest.py)."""

import pytest

PASSWORD = "correct-horse-battery-staple"

# Every browser test runs against the live server, so its data must be committed. (The role
# groups migrations create do not survive the flush between them: see role_groups.)
browser_test = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def log_in(page, username: str, password: str = PASSWORD, path: str = "/") -> None:
    """Open ``path``, which redirects an anonymous visitor to the login form, and submit it."""
    page.goto(path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

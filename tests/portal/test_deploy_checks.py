"""``manage.py check --deploy`` refuses the keys the examples ship and keys shorter or plainer
than Django asks (portal.checks): errors, not warnings, each naming the setting and what to do.
The examples' placeholders are read from the files that ship them, so a new placeholder the
check does not know fails here."""

import re
import secrets
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import run_checks

from portal import checks
from tests.portal.test_settings import PRODUCTION, run_manage

ROOT = Path(settings.BASE_DIR)
EXAMPLES = [
    ROOT / "deploy" / "overlays" / "example" / "portal-secrets.env",
    ROOT / "deploy" / "overlays" / "example" / "first-admin.env",
    ROOT / ".env.example",
]
KEYS = ("SECRET_KEY", "CONFIG_ENCRYPTION_KEYS", "DJANGO_SUPERUSER_PASSWORD")


def shipped_placeholders() -> set[str]:
    found = set()
    for path in EXAMPLES:
        for name, value in re.findall(r"^([A-Z_]+)=(\S*)", path.read_text(), re.MULTILINE):
            if name in KEYS and value:
                found.add(value)
    return found


def test_every_placeholder_the_examples_ship_is_known_to_the_check():
    shipped = shipped_placeholders()
    assert len(shipped) >= 3  # the key, the Fernet key, the first admin's password
    assert shipped <= checks.PLACEHOLDERS


def deploy_errors(settings, **overrides) -> list[str]:
    for name, value in overrides.items():
        setattr(settings, name, value)
    return [
        f"{m.id}: {m.msg}" for m in run_checks(include_deployment_checks=True) if m.is_serious()
    ]


@pytest.mark.parametrize("placeholder", sorted(checks.PLACEHOLDERS))
def test_a_placeholder_key_is_an_error(settings, placeholder):
    errors = deploy_errors(settings, SECRET_KEY=placeholder)
    assert any("portal.E001: SECRET_KEY is the placeholder" in e for e in errors), errors
    errors = deploy_errors(
        settings, SECRET_KEY=secrets.token_urlsafe(50), CONFIG_ENCRYPTION_KEYS=[placeholder]
    )
    assert any(e.startswith("portal.E002: CONFIG_ENCRYPTION_KEYS entry 1") for e in errors)


@pytest.mark.parametrize("around", ["\n", " ", "\r\n", "\t"])
def test_a_placeholder_with_whitespace_around_it_is_still_an_error(settings, around):
    """A Secret made from a file (kubectl create secret --from-file=SECRET_KEY=key.txt) keeps
    the file's newline, which settings.py passes on in SECRET_KEY: still the placeholder."""
    placeholder = "replace-me-with-50-random-characters-from-a-secret-manager"
    errors = deploy_errors(settings, SECRET_KEY=placeholder + around)
    assert any("portal.E001: SECRET_KEY is the placeholder" in e for e in errors), errors
    errors = deploy_errors(settings, SECRET_KEY=around + "a1b2c3d4" * 6 + around)
    assert any("has 48 characters" in e for e in errors), errors
    errors = deploy_errors(
        settings,
        SECRET_KEY=secrets.token_urlsafe(50),
        CONFIG_ENCRYPTION_KEYS=["replace-me-with-a-fernet-key-from-a-secret-manager" + around],
    )
    assert any("E002: CONFIG_ENCRYPTION_KEYS entry 1 is the placeholder" in e for e in errors)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("x" * 49 + "abcd", "has 5"),  # long enough, 5 different: passes (control below)
        ("a1b2c3d4" * 6, "has 48 characters; Django asks for at least 50"),
        ("abab" * 20, "has 2 different characters; Django asks for at least 5"),
        # A fixed key: a random one would name the test differently in each xdist worker.
        ("django-insecure-" + "k3Y9-qZ" * 8, "django-insecure-"),
    ],
)
def test_a_key_django_calls_weak_is_an_error(settings, key, why):
    errors = [e for e in deploy_errors(settings, SECRET_KEY=key) if e.startswith("portal.E001")]
    if why == "has 5":
        assert errors == []
    else:
        assert len(errors) == 1 and why in errors[0], errors


def test_a_real_key_and_fernet_keys_pass(settings):
    errors = deploy_errors(
        settings,
        SECRET_KEY=secrets.token_urlsafe(50),
        SECRET_KEY_FALLBACKS=[secrets.token_urlsafe(50)],
        CONFIG_ENCRYPTION_KEYS=[Fernet.generate_key().decode(), Fernet.generate_key().decode()],
    )
    assert [e for e in errors if e.startswith("portal.")] == []
    errors = deploy_errors(settings, SECRET_KEY_FALLBACKS=["short"])
    assert any(e.startswith("portal.E001: SECRET_KEY_FALLBACKS has 5 characters") for e in errors)
    errors = deploy_errors(settings, CONFIG_ENCRYPTION_KEYS=["not-a-fernet-key"])
    assert any("entry 1 is not a Fernet key" in e for e in errors)


@pytest.mark.parametrize("everyone", ["0.0.0.0/0", "::/0"])
def test_a_trusted_proxy_network_of_every_address_is_an_error(settings, everyone):
    """0.0.0.0/0 in TRUSTED_PROXIES: any client's X-Forwarded-For is believed."""
    errors = deploy_errors(settings, TRUSTED_PROXIES=["10.244.0.0/16", everyone])
    assert [e for e in errors if e.startswith("portal.E003")] == [
        f"portal.E003: TRUSTED_PROXIES entry {everyone} is every address: any client could "
        "choose the address the rate limiter and the login throttle count it by."
    ]
    errors = deploy_errors(settings, TRUSTED_PROXIES=["10.244.0.0/16", "fd00::/8", "1.2.3.4/32"])
    assert not any(e.startswith("portal.E003") for e in errors)


def test_check_deploy_fails_on_the_shipped_placeholder_and_says_what_to_do():
    """As an operator runs it: the example Secret's values, production otherwise."""
    shipped = dict(re.findall(r"^([A-Z_]+)=(\S*)", EXAMPLES[0].read_text(), re.MULTILINE))
    result = run_manage(
        "check",
        "--deploy",
        **{**PRODUCTION, "SECRET_KEY": shipped["SECRET_KEY"]},
        PORTAL_ENV_FILE="",
        CONFIG_ENCRYPTION_KEYS=shipped["CONFIG_ENCRYPTION_KEYS"],
    )
    assert result.returncode != 0  # errors fail check whatever --fail-level
    assert "portal.E001" in result.stderr and "portal.E002" in result.stderr
    assert "SECRET_KEY is the placeholder the examples ship" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # the hint: how to make one
    # Without --deploy (a developer's `check`), nothing is said about keys.
    plain = run_manage("check", **PRODUCTION, PORTAL_ENV_FILE="")
    assert plain.returncode == 0, plain.stderr

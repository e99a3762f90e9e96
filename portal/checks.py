"""System checks of the portal's own (``manage.py check --deploy``), registered in PortalConfig.

Django's own check of SECRET_KEY (security.W009) is a warning, and it passes a key anyone can
read: the placeholders the examples ship (deploy/overlays/example/portal-secrets.env,
.env.example) are long and varied enough to look real. A deployment that kept one signs its
sessions, its acknowledge links and -- without CONFIG_ENCRYPTION_KEYS -- the encryption of its
stored secrets with a key published in this repository. So with ``--deploy`` these are errors,
each saying what to do.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register

# Values the examples ship for operators to replace (tests/portal/test_deploy_checks.py reads
# the example files and fails when one is missing here).
PLACEHOLDERS = frozenset(
    {
        "replace-me-with-50-random-characters-from-a-secret-manager",
        "replace-me-with-a-fernet-key-from-a-secret-manager",
        "replace-me-with-a-long-password-from-a-secret-manager",
        # The key settings.py uses with DEBUG on and no SECRET_KEY (never in production).
        "dev-only-insecure-key-8f3b2c1d9e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f",
    }
)
# Django's own bar for a key (django.core.checks.security.base: W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5

GENERATE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
GENERATE_FERNET = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` must not sign a production portal, or None. Judged without the whitespace
    around it: a Secret made from a file (``kubectl create secret --from-file``) or an env
    file's line keeps a newline or a space that the key is still the placeholder beside."""
    key = key.strip()
    if key in PLACEHOLDERS:
        return "is the placeholder the examples ship"
    if key.startswith("django-insecure-"):
        return "is one Django's startproject generated for development (django-insecure-)"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"has {len(key)} characters; Django asks for at least {SECRET_KEY_MIN_LENGTH}"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (
            f"has {len(set(key))} different characters; Django asks for at least "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS}"
        )
    return None


@register(Tags.security, deploy=True)
def production_keys(app_configs=None, **kwargs) -> list[Error]:
    """SECRET_KEY (and its fallbacks) and CONFIG_ENCRYPTION_KEYS are real keys, not the ones
    the examples ship nor ones Django calls too weak."""
    errors = []
    for name, keys in (
        ("SECRET_KEY", [settings.SECRET_KEY]),
        ("SECRET_KEY_FALLBACKS", list(getattr(settings, "SECRET_KEY_FALLBACKS", []))),
    ):
        for key in keys:
            problem = secret_key_problem(str(key))
            if problem:
                errors.append(
                    Error(
                        f"{name} {problem}: anyone who reads it can forge sessions and links.",
                        hint=f"Set a random key from your secret manager, e.g. {GENERATE_KEY}",
                        id="portal.E001",
                    )
                )
    for position, key in enumerate(settings.CONFIG_ENCRYPTION_KEYS, start=1):
        if key.strip() in PLACEHOLDERS:
            errors.append(
                Error(
                    f"CONFIG_ENCRYPTION_KEYS entry {position} is the placeholder the examples "
                    "ship: stored secrets would be encrypted with a published key.",
                    hint=f"Set a Fernet key from your secret manager, e.g. {GENERATE_FERNET}",
                    id="portal.E002",
                )
            )
        elif not _is_fernet_key(key):
            errors.append(
                Error(
                    f"CONFIG_ENCRYPTION_KEYS entry {position} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    hint=f"Generate one: {GENERATE_FERNET}",
                    id="portal.E002",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def trusted_proxies(app_configs=None, **kwargs) -> list[Error]:
    """No TRUSTED_PROXIES entry is every address: 0.0.0.0/0 believes any client's
    X-Forwarded-For (one written IPv6 is its address, a new one per request escapes the rate
    limiter and the login throttle) and makes every IPv4 client the proxy itself (one budget
    for all of them)."""
    return [
        Error(
            f"TRUSTED_PROXIES entry {entry} is every address: any client could choose the "
            "address the rate limiter and the login throttle count it by.",
            hint="Name the proxies' own network (on Kubernetes, the pod network: 10.244.0.0/16).",
            id="portal.E003",
        )
        for entry in settings.TRUSTED_PROXIES
        if entry.endswith("/0")
    ]


def _is_fernet_key(key: str) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        return False
    return True

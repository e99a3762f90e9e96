"""Encryption of secrets at rest (Fernet, with key rotation): configuration secrets, check
credentials, and whatever else an app stores encrypted.

Keys come from CONFIG_ENCRYPTION_KEYS; the first one encrypts and every one decrypts, so a
key is rotated by putting the new one first, re-encrypting every stored secret
(``rotate_all``: `manage.py rotate_config_secrets`), then dropping the old. A key derived from
SECRET_KEY is always the last to try, so a deployment that starts without explicit keys can
move to them later.

Every app that stores something encrypted registers how to re-encrypt it
(``register_encrypted``, from its AppConfig.ready): the one list rotation walks, so no
secret is left behind on an old key.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from portal.errors import Misconfigured

log = structlog.get_logger(__name__)


def _derived_key() -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal-config-secrets")
    return base64.urlsafe_b64encode(hkdf.derive(settings.SECRET_KEY.encode()))


@cache
def _fernet() -> MultiFernet:
    keys = []
    for i, key in enumerate(settings.CONFIG_ENCRYPTION_KEYS):
        try:
            keys.append(Fernet(key))
        except ValueError:
            raise ImproperlyConfigured(
                f"CONFIG_ENCRYPTION_KEYS entry {i + 1} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    keys.append(Fernet(_derived_key()))
    return MultiFernet(keys)


def reset_keys() -> None:
    """Forget the cached keys (after the settings changed, e.g. in tests)."""
    _fernet.cache_clear()
    _hash_key.cache_clear()


def encrypt(value) -> str:
    """Any JSON value -> a Fernet token (text)."""
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt(token: str):
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, AttributeError, ValueError):
        log.error(
            "secret not decryptable: CONFIG_ENCRYPTION_KEYS (or SECRET_KEY) changed "
            "without the key it was encrypted with"
        )
        raise Misconfigured(
            "a stored secret cannot be decrypted with the configured keys; an operator must "
            "restore the key it was encrypted with (CONFIG_ENCRYPTION_KEYS or SECRET_KEY)",
            code="secret_unreadable",
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt with the first key."""
    return _fernet().rotate(token.encode()).decode()


@dataclass(frozen=True)
class EncryptedColumn:
    """A column that holds secrets, and how to re-encrypt all of them (returns how many rows
    changed)."""

    name: str  # "app.Model.field", as the rotation reports it
    rotate_all: Callable[[], int]


ENCRYPTED: dict[str, EncryptedColumn] = {}


def register_encrypted(name: str, rotate_all: Callable[[], int]) -> None:
    ENCRYPTED[name] = EncryptedColumn(name, rotate_all)


def rotate_all() -> dict[str, int]:
    """Re-encrypt every registered column with the first key: rows changed, by column."""
    return {column.name: column.rotate_all() for column in ENCRYPTED.values()}


@cache
def _hash_key() -> bytes:
    return hashlib.sha256(b"portal-config-hash:" + settings.SECRET_KEY.encode()).digest()


def content_hash(document) -> str:
    """A keyed hash of a plaintext document: equal documents, equal hashes; and a secret
    cannot be guessed from the hash by trying values offline."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hmac.new(_hash_key(), canonical.encode(), hashlib.sha256).hexdigest()

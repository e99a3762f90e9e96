"""Strict readers for settings taken from the environment.

Each raises ImproperlyConfigured on a value it cannot understand, so a typo in a deployment
fails at start-up instead of quietly falling back to a default. ``env_secret`` also reads
``NAME_FILE`` (Docker and Kubernetes secrets are mounted as files).
"""

import ipaddress
import json
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, not {value}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """Addresses or networks in CIDR notation, comma-separated (``10.0.0.10,10.244.0.0/16``),
    each checked and written canonically; a network with host bits set (``10.0.0.1/8``) is
    refused as the typo it usually is."""
    networks = []
    for item in env_list(name):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=True)))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an address or a network in CIDR notation ({exc})"
            ) from None
    return networks


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_secret(name: str, default: str = "") -> str:
    """The value of NAME, or the contents of the file NAME_FILE points at."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc}") from None
    return os.environ.get(name, default)


def env_rate(name: str, default: str) -> tuple[int, int]:
    """ "100/200": a rate per minute and a burst, both positive integers."""
    raw = os.environ.get(name, default).strip()
    try:
        rate, burst = (int(part) for part in raw.split("/"))
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be <per minute>/<burst>, like 100/200, not {raw!r}"
        ) from None
    if rate < 1 or burst < 1:
        raise ImproperlyConfigured(f"{name}: the rate and the burst must be at least 1")
    return rate, burst


def env_map(name: str, *, choices: tuple[str, ...] = ()) -> dict[str, str]:
    """``group=value`` pairs, comma-separated (``portal-admins=admin,ops=operator``), or a
    JSON object for names holding commas or equals signs (``{"cn=ops,dc=example": "operator"}``);
    with ``choices``, every value must be one of them."""
    raw = env_str(name).strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            pairs = json.loads(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: not a JSON object ({exc})") from None
        if not isinstance(pairs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()
        ):
            raise ImproperlyConfigured(f"{name}: a JSON object of strings to strings")
        items = [(key.strip(), value.strip()) for key, value in pairs.items()]
    else:
        items = []
        for item in (part.strip() for part in raw.split(",")):
            key, sep, value = item.rpartition("=")
            if item and not sep:
                raise ImproperlyConfigured(f"{name}: {item!r} is not group=value")
            if item:
                items.append((key.strip(), value.strip()))
    mapping: dict[str, str] = {}
    for key, value in items:
        if not key or not value:
            raise ImproperlyConfigured(f"{name}: an empty group or value in {raw!r}")
        if choices and value not in choices:
            raise ImproperlyConfigured(
                f"{name}: {value!r} (for {key!r}) must be one of {', '.join(choices)}"
            )
        mapping[key] = value
    return mapping

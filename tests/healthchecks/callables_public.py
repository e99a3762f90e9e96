"""A checks module with ``__all__``: what it lists is offered, even if defined elsewhere."""

from tests.healthchecks.callables import fine

__all__ = ["fine"]


def helper() -> bool:
    """Defined here but not listed in __all__: not offered."""
    return True

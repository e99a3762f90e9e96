"""Whom a rule acts as: whoever last wrote it, with their rights as they are when it acts.

A rule is no way round a refusal: its author must own what its scope reaches and hold the
scope each of its actions' changes needs, when it is saved and again whenever it acts (a
person who left the team, a token revoked or stripped of a scope: refused, saying why).
"""

from dataclasses import replace

from automation.models import Rule
from portal.auth import Principal, system_actor, token_principal, user_principal
from portal.errors import Forbidden
from portal.models import ApiToken


def written_by(actor) -> dict:
    """The rule's author fields for a write by ``actor``."""
    principal = actor if isinstance(actor, Principal) else None
    return {
        "written_by": str(actor)[:200],
        "written_by_user_id": principal.user_id if principal else None,
        "written_by_token_id": principal.token_id if principal else None,
    }


def acting_as(rule: Rule | None) -> Principal:
    """The rule's author as a principal now; the portal itself for a rule written by a
    command or before authors were kept."""
    if rule is None or not rule.written_by or rule.written_by.startswith("system:"):
        author = system_actor("rules")
    elif rule.written_by_user_id is not None and rule.written_by_user.is_active:
        author = user_principal(rule.written_by_user)
    elif (
        rule.written_by_token_id is not None
        and ApiToken.objects.usable().filter(pk=rule.written_by_token_id).exists()
    ):
        author = token_principal(rule.written_by_token)
    else:
        raise Forbidden(
            f"the rule {rule.name!r} acts with the rights of {rule.written_by}, who can no "
            "longer act; someone who may must save it again"
        )
    if rule is None:
        return replace(author, kind="rule", name="?")
    by = f" by {rule.written_by}" if rule.written_by else ""
    return replace(author, kind="rule", name=f"{rule.name}{by}")


def require_scope(actor, needed: str | None, what: str) -> None:
    """Forbidden unless ``actor`` holds ``needed``, the scope a ``what`` action's change needs
    when made directly (the portal itself holds every scope)."""
    if needed is None or not isinstance(actor, Principal) or actor.has_scope(needed):
        return
    raise Forbidden(
        f"{actor} lacks the scope '{needed}' that a {what} action needs",
        required_scope=str(needed),
    )


def acting_for(rule: Rule | None, kind: str, needed: str | None) -> Principal:
    """``acting_as`` for one action of ``kind``: refused when the author no longer holds
    the scope its change needs."""
    actor = acting_as(rule)
    require_scope(actor, needed, kind)
    return actor

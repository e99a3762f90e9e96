"""What the portal knows of a kind of rule action, one record each (as healthchecks.probes.kinds
is for checks): its options (the API's schema for it), what its change needs when made
directly (the scope its rule's author must hold), its save-time checks, and its run.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ninja import Schema

# (ok, HTTP status if any, error) of one attempt.
Outcome = tuple[bool, int | None, str]


@dataclass(frozen=True)
class ActionKind:
    name: str
    # Its options as the API takes them: a Schema with ``type: Literal[name]``.
    options: type[Schema]
    # run(delivery, message, impacted) -> Outcome: one attempt, never raising for what the
    # receiver does (the sender records whatever it returns, retries what failed).
    run: Callable[..., Outcome]
    # check(action, path, fields): per-field reasons the action cannot be saved, beyond its
    # schema (a channel or checklist that does not exist, a URL the policy refuses).
    check: Callable[[dict, str, dict], None] = lambda action, path, fields: None
    # The scope the change it makes needs when made directly: its rule's author must hold it
    # (a rule is no way round a refusal), when the rule is saved and when it acts.
    scope: str | None = None
    # Options kept encrypted on the rule, shown by name only.
    secret_options: tuple[str, ...] = ()
    # It calls out (and may take its whole timeout): the sender gives its thread's database
    # connection back meanwhile. One that writes in the portal keeps it.
    calls_out: bool = True
    # The triggers whose rules may hold it (None: any): rolling a configuration back needs a
    # failed deployment to roll back from.
    triggers: tuple[str, ...] | None = None
    # describe(action): whom or what it reaches, in a few words, for an escalation's message
    # ("who was told first"): a channel's name, a webhook's host. No secret: an option kept
    # as one is never named.
    describe: Callable[[dict], str] = lambda action: action["type"]


ACTIONS: dict[str, ActionKind] = {}


def register(kind: ActionKind) -> ActionKind:
    if kind.name in ACTIONS:
        raise ValueError(f"action kind {kind.name!r} is registered twice")
    ACTIONS[kind.name] = kind
    return kind

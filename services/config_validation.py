"""Evaluating a configuration against its schema, in time bounded by the input's size.

Anyone with ``config:read`` can make the portal validate a document (``validate``), so the
schema's author must not be able to stall a worker with it. Three things would:

- ``pattern`` and ``patternProperties`` evaluated by Python's backtracking ``re``
  (``^(a+)+$`` doubles its time with every character of a non-matching value). Here they are
  evaluated by RE2, which runs in linear time and refuses what it cannot do that way
  (backreferences, lookaround): ``compile_pattern`` is also what a schema's patterns must pass
  before it is stored.
- ``uniqueItems`` over items that cannot be sorted (objects), which jsonschema compares pair by
  pair: 80,000 ``{}`` in a 256 KB document is 3 billion comparisons. Here items are compared by
  a canonical form, in one pass.
- A schema whose subschemas fan out (``anyOf`` of two references to a definition that is itself
  an ``anyOf`` of two, thirty levels deep) costs 2**30 evaluations for one value. Every keyword
  evaluation spends from a budget (``CONFIG_VALIDATION_SECONDS``); past it, validation stops
  with ``ValidationTooCostly`` instead of running on.
"""

import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

import re2
from django.conf import settings
from jsonschema import Draft202012Validator, ValidationError, validators

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the caller's error, not a log line


class PatternError(ValueError):
    """A pattern RE2 cannot run (backreferences, lookaround) or that does not parse."""


class ValidationTooCostly(Exception):
    """Validation spent its whole time budget; the schema (not the value) is at fault."""


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str):
    """The pattern compiled by RE2 (linear time), or PatternError saying why it cannot be."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(
            f"{pattern!r} cannot be evaluated in linear time ({reason}); backreferences and "
            "lookaround are not supported"
        ) from None


def _search(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None


# --- The budget ------------------------------------------------------------------------------


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.steps = 0

    def spend(self) -> None:
        self.steps += 1
        if self.steps % 256 == 0 and time.monotonic() > self.deadline:
            raise ValidationTooCostly(
                f"validation stopped after {self.steps} steps: the schema is too costly to "
                f"evaluate within {settings.CONFIG_VALIDATION_SECONDS:g}s"
            )


_budget: ContextVar[_Budget | None] = ContextVar("config_validation_budget", default=None)


@contextmanager
def budget(seconds: float | None = None):
    """Evaluations inside spend from one budget of ``seconds``."""
    token = _budget.set(_Budget(settings.CONFIG_VALIDATION_SECONDS if seconds is None else seconds))
    try:
        yield
    finally:
        _budget.reset(token)


def _budgeted(keyword):
    def evaluate(validator, value, instance, schema):
        spent = _budget.get()
        if spent is not None:
            spent.spend()
        return keyword(validator, value, instance, schema)

    return evaluate


# --- Keywords evaluated here rather than by jsonschema's defaults -----------------------------


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_keys(instance: dict, schema: dict) -> list[str]:
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        key
        for key in instance
        if key not in known and not any(_search(pattern, key) for pattern in patterns)
    ]


def _additional_properties(validator, allowed, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    extras = _additional_keys(instance, schema)
    if validator.is_type(allowed, "object"):
        for key in extras:
            yield from validator.descend(instance[key], allowed, path=key)
    elif not allowed and extras:
        shown = ", ".join(repr(key) for key in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({shown} unexpected)")


def _canonical(value) -> str:
    """Equal JSON values (1 and 1.0, objects in any key order) give equal text; true and 1
    do not."""

    def normal(node):
        if isinstance(node, bool) or node is None or isinstance(node, str):
            return node
        if isinstance(node, float) and node.is_integer():
            return int(node)
        if isinstance(node, dict):
            return {key: normal(item) for key, item in node.items()}
        if isinstance(node, list):
            return [normal(item) for item in node]
        return node

    return json.dumps(normal(value), sort_keys=True, separators=(",", ":"))


def _unique_items(validator, unique, instance, schema):
    if not (unique and validator.is_type(instance, "array")):
        return
    seen: set[str] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


_OWN = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
PortalValidator = validators.extend(
    Draft202012Validator,
    validators={
        name: _budgeted(_OWN.get(name, keyword))
        for name, keyword in Draft202012Validator.VALIDATORS.items()
    },
)


def errors(validator, document) -> list[ValidationError]:
    """Every error of ``document``, within one budget; ValidationTooCostly past it (or when
    the schema refers to itself without end, which the checks before storing should have
    refused)."""
    with budget():
        try:
            return list(validator.iter_errors(document))
        except RecursionError:
            raise ValidationTooCostly(
                "validation stopped: the schema refers to itself without end"
            ) from None

"""Python checks: a callable of the portal's own (under HEALTH_CALLABLE_PREFIXES, the seed's
``health_check_func``), run in a thread of its own; it answers a bool, a status word, a Status,
or ``{"status", "details", "errors", "warnings", "metrics"}``, and may be async."""

import asyncio
import functools
import importlib
import inspect
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

from healthchecks.probes.kinds import Kind
from healthchecks.probes.outcome import (
    SEVERITY,
    STATUS_WORDS,
    Failure,
    ProbeOutcome,
    Run,
    clip,
    worsen,
)
from healthchecks.probes.prober import Prober
from healthchecks.status import ErrorCode, Status
from portal.egress import TargetError

PYTHON_THREADS = 8
_STATUS_LABELS = {status.label: status for status in Status}


async def probe_python(prober: Prober, run: Run) -> None:
    spec = run.spec
    try:
        func = load_callable(spec.target)
    except TargetError as exc:
        raise Failure(ErrorCode.BLOCKED, str(exc)) from None
    run.stage = f"running {spec.target}"
    try:
        if inspect.iscoroutinefunction(func):
            result = await func()
        else:
            # A thread of our own: a hung check must not starve DNS (default executor).
            # On timeout the thread runs on; only the probe stops waiting.
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(_python_executor(), _releasing, func)
            if inspect.isawaitable(result):
                result = await result
    except Exception as exc:
        message = f"{spec.target} raised {type(exc).__name__}: {clip(str(exc))}"
        raise Failure(ErrorCode.INTERNAL, message) from None
    _apply_callable_result(run.outcome, spec.target, result)


_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def validate_callable_path(path: str) -> str | None:
    """Why a python check may not name ``path`` (for a field error), or None when it may."""
    try:
        load_callable(path)
    except TargetError as exc:
        return str(exc)
    return None


def load_callable(path: str) -> Callable[[], Any]:
    """The callable at ``path``, only under settings.HEALTH_CALLABLE_PREFIXES (checked
    before anything is imported), and offered by its module (see _check_exported)."""
    prefixes = list(settings.HEALTH_CALLABLE_PREFIXES)
    if not _DOTTED.fullmatch(path or ""):
        raise TargetError(f"{path!r} is not a dotted path like package.module.function")
    if not any(_under_prefix(path, prefix) for prefix in prefixes):
        allowed = ", ".join(prefixes) or "none"
        raise TargetError(f"{path} is not under HEALTH_CALLABLE_PREFIXES ({allowed})")
    module_name, _, name = path.rpartition(".")
    if name.startswith("_"):
        raise TargetError(f"{path} is private (starts with _)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name}: {exc}") from None
    except Exception as exc:
        raise TargetError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    func = getattr(module, name, None)
    if func is None:
        raise TargetError(f"{module_name} has no {name}")
    if not callable(func):
        raise TargetError(f"{path} is not callable")
    _check_exported(module, name, func, prefixes)
    return func


def _check_exported(module: Any, name: str, func: Any, prefixes: list[str]) -> None:
    """A module's ``__all__`` is the list of what it offers; without one, only what it
    defines counts -- so ``import os`` in a checks module does not offer ``os.system``."""
    public = getattr(module, "__all__", None)
    if public is not None:
        if name not in public:
            raise TargetError(f"{module.__name__}.{name} is not in {module.__name__}.__all__")
        return
    home = getattr(func, "__module__", None) or "an unknown module"
    if not any(_under_prefix(f"{home}.{name}", prefix) for prefix in prefixes):
        message = f"{module.__name__}.{name} is imported from {home}, not defined under a prefix"
        raise TargetError(message)


def _under_prefix(path: str, prefix: str) -> bool:
    prefix = prefix.strip()
    if not prefix:
        return False
    return path.startswith(prefix if prefix.endswith(".") else prefix + ".")


def _releasing(func: Callable[[], Any]) -> Any:
    """Call ``func``, then give back the database connections it took in this thread: the
    executor's threads live on, and a connection each would drain the process's pool."""
    try:
        return func()
    finally:
        connections.close_all()


@functools.cache
def _python_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=PYTHON_THREADS, thread_name_prefix="healthcheck")


def _apply_callable_result(outcome: ProbeOutcome, path: str, result: Any) -> None:
    """bool, Status, a status word, or {"status", "details", "errors", "warnings", "metrics"}."""
    report = result if isinstance(result, dict) else {"status": result}
    level = _callable_status(report.get("status"))
    if level is None:
        shown = clip(repr(report.get("status")), 100)
        message = f"{path} returned status {shown}: expected a bool, a status word or a Status"
        worsen(outcome, Status.UNHEALTHY, ErrorCode.BAD_BODY, message)
        return
    if isinstance(report.get("details"), dict):
        outcome.details.update(_json_safe(report["details"]))
    if isinstance(report.get("metrics"), dict):
        outcome.metrics.update(_json_safe(report["metrics"]))
    outcome.warnings += _texts(report.get("warnings"))
    errors = _texts(report.get("errors"))
    if SEVERITY[level] > SEVERITY[Status.HEALTHY]:
        first = errors[0] if errors else f"{path} reported {level.label}"
        worsen(outcome, level, ErrorCode.REPORTED, first)
        outcome.errors += errors[1:]
    else:
        outcome.status = level  # healthy, or maintenance if the callable says so
        outcome.errors += errors


def _json_safe(value: dict) -> dict:
    """What a callable reports is stored as JSON: anything else (a datetime) becomes text."""
    return json.loads(json.dumps(value, default=str))


def _callable_status(value: Any) -> Status | None:
    if isinstance(value, bool):
        return Status.HEALTHY if value else Status.UNHEALTHY
    if isinstance(value, Status):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return STATUS_WORDS.get(word) or _STATUS_LABELS.get(word)
    return None


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    return [clip(str(item), 1000) for item in items] if isinstance(items, list | tuple) else []


KIND = Kind(
    name="python",
    label="Python callable",
    probe=probe_python,
    check_target=validate_callable_path,
)

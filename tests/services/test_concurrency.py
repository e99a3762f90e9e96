"""Concurrent writers that reach the registry -- manifests, deployments, dependency edits,
lifecycle moves -- take its lock first, then rows: no deadlock, and no cycle stored however
their edges interleave."""

import contextlib
import threading

import pytest
from django.db import connection

from manifest import apply as manifests
from manifest.schemas import ManifestIn
from portal.auth import system_actor
from portal.errors import Conflict, InvalidInput, NotFound
from services import deployments, lifecycle, registry
from services.graph import DependencyGraph
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = system_actor("test")
ROUNDS = 15


def run_together(*workers) -> list[BaseException]:
    """Run each worker in a thread of its own (its own connection); the unexpected errors."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def thread(work):
        try:
            start.wait()
            for i in range(ROUNDS):
                # A refused cycle, an edge already gone: answers, not faults.
                with contextlib.suppress(InvalidInput, Conflict, NotFound):
                    work(i)
        except BaseException as exc:  # a deadlock surfaces as an OperationalError
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=thread, args=(work,)) for work in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer is stuck"
    return errors


def test_manifests_deployments_edges_and_moves_do_not_deadlock_or_make_a_cycle():
    TeamFactory(name="core")
    for name in ("a", "b", "c"):
        ServiceFactory(name=name, team__name="core")

    def manifest(i):
        deps = ["b"] if i % 2 else ["c"]
        document = {"services": [{"name": "a", "dependencies": deps, "description": f"r{i}"}]}
        manifests.apply(ManifestIn.model_validate(document), ACTOR)

    def deploy(i):
        deployments.report(
            "a",
            version=f"1.{i}",
            status="succeeded",
            config_version=None,
            config_hash="",
            link="",
            actor=ACTOR,
        )

    def edges(i):
        # b -> c, then c -> a: with a -> b that would close a -> b -> c -> a.
        if i % 2:
            registry.set_dependency("b", "c", "hard", ACTOR)
        else:
            registry.set_dependency("c", "a", "soft", ACTOR)
        registry.remove_dependency("c", "a", ACTOR) if i % 3 == 0 else None

    def moves(i):
        lifecycle.transition("b", "running" if i % 2 else "stopped", "", ACTOR, force=True)

    assert run_together(manifest, deploy, edges, moves) == []
    assert DependencyGraph.load().find_cycle() is None

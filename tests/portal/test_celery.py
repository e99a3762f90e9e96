"""The Celery app's process setup."""

from portal.celery import probe_niceness


def test_only_a_worker_that_probes_lowers_its_priority():
    assert probe_niceness({"probes": None}, 10) == 10
    assert probe_niceness({"celery": None, "dispatch": None, "probes": None}, 5) == 5
    assert probe_niceness({"dispatch": None}, 10) == 0
    assert probe_niceness({"celery": None}, 10) == 0
    assert probe_niceness({"probes": None}, 0) == 0

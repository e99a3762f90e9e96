"""Garbage-collector settings for long-running processes (web and workers).

A request that lists a hundred services allocates tens of thousands of short-lived objects;
with CPython's defaults that triggers a dozen young collections per request and, every few
requests, a full one over every object the process holds (20-80 ms, measured in
bench/README.md). Freezing what exists after start-up (Django, apps, URL patterns) takes it
out of every later collection, and a larger young generation makes collections rarer.
"""

import gc

YOUNG_THRESHOLD = 20_000


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

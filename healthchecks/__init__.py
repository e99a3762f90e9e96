"""Health: checks, the engine that runs them, and what is read from what it records.

Cut along the way a result flows (docs/architecture.md): ``engine`` runs and records checks,
``reads`` answers questions about what was recorded, ``watch`` is the portal watching itself,
``web`` is the HTTP surface over all of it. Beside them: the models, the pure status rules
(``status``), the kinds of check (``probes``), the network policy, the check definitions'
one write path (``checks``, with their schemas) and the Celery tasks.
"""

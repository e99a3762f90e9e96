"""What the registry tells the apps built on it, without knowing them.

Health sits on top of the registry (it imports services, never the reverse), so when the
registry changes something health derives from, it says so here and health listens.
"""

from django.dispatch import Signal

# Sent inside the writing transaction with ``service_ids``: the services whose dependencies
# were created, changed or removed. A service's derived health depends on its hard
# dependencies, so health recomputes them (healthchecks.apps).
dependencies_changed = Signal()

# Sent inside the writing transaction with ``service_ids``: a maintenance window covering these
# services was created or removed. Health recomputes them (MAINTENANCE is a derived status).
maintenance_changed = Signal()

# Sent inside the writing transaction with ``service_id`` and ``deployment_id``: a release of it
# was reported rolled out (in progress or succeeded) and waits for its verdict. Health runs its
# checks at once, so the verdict, which rests only on results recorded after the release, does
# not wait out their intervals.
deployment_reported = Signal()

# Sent inside the verdict's transaction with ``deployment``, ``state`` (passed or failed) and
# ``blamed`` (False: a hard dependency was down before the release): a deployment's
# verification ended. Automation turns it into events, rule actions and, when the service
# asks for it, a configuration rollback.
deployment_verified = Signal()

# Sent inside the transition's transaction with ``service_id``, ``from_status`` and
# ``to_status``: a service's lifecycle moved. Health stops probing a service that is not watched
# (lifecycle.NOT_WATCHED) and starts again when it leaves that state, and recomputes its status.
lifecycle_changed = Signal()

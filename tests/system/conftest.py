"""The system tier's tests of portalctl (the deploy gate, the documented pipelines) moved here
from tests/portalctl: they use its fixtures -- a token, the command against a live portal, the
probing loops."""

from tests.portalctl.conftest import portalctl, prober, scheduled_prober, token

__all__ = ["portalctl", "prober", "scheduled_prober", "token"]

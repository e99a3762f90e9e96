"""Rule actions, one module per kind, each with its options, its save-time checks and its run
(as the probes are for checks): notify a channel, call a webhook, move the service's
lifecycle, start one of its checklists, roll its configuration back. The rules (validation,
scopes, secrets), the API's schema and the sender all read ``ACTIONS``. Adding a kind is one
module defining ``KIND`` and its name in the line below.
"""

from automation.actions import checklist, lifecycle, notify, rollback_config, webhook
from automation.actions.kinds import ACTIONS, ActionKind, Outcome, register

for _module in (notify, webhook, lifecycle, checklist, rollback_config):
    register(_module.KIND)

__all__ = ["ACTIONS", "ActionKind", "Outcome", "register"]

from django.apps import AppConfig


class ChecklistsConfig(AppConfig):
    """The seed's maintenance routines as checklists people tick, with the portal's own
    evidence beside the items it can answer (a part above health)."""

    name = "checklists"
    default_auto_field = "django.db.models.BigAutoField"

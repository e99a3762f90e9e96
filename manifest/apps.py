from django.apps import AppConfig


class ManifestConfig(AppConfig):
    """Manifests: a service with its checks (later its alerts), applied whole. Above the
    registry and the health engine, which it composes; neither knows it."""

    name = "manifest"
    verbose_name = "Manifests"

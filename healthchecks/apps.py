from django.apps import AppConfig


class HealthchecksConfig(AppConfig):
    name = "healthchecks"
    verbose_name = "Health checks"

    def ready(self) -> None:
        from healthchecks import service_health
        from services import signals

        signals.dependencies_changed.connect(
            service_health.on_dependencies_changed, dispatch_uid="health-on-dependencies"
        )

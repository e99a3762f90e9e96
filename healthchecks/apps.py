from django.apps import AppConfig


class HealthchecksConfig(AppConfig):
    name = "healthchecks"
    verbose_name = "Health checks"

    def ready(self) -> None:
        from healthchecks import checks
        from healthchecks.engine import scheduling, service_health
        from portal import encryption
        from services import signals

        signals.dependencies_changed.connect(
            service_health.on_dependencies_changed, dispatch_uid="health-on-dependencies"
        )
        signals.maintenance_changed.connect(
            service_health.on_maintenance_changed, dispatch_uid="health-on-maintenance"
        )
        # The schedule first, then the status (and with it the alert) follows.
        signals.lifecycle_changed.connect(
            scheduling.on_lifecycle_changed, dispatch_uid="health-schedule-on-lifecycle"
        )
        signals.lifecycle_changed.connect(
            service_health.on_lifecycle_changed, dispatch_uid="health-status-on-lifecycle"
        )
        signals.deployment_reported.connect(
            scheduling.on_deployment_reported, dispatch_uid="health-on-deployment"
        )
        encryption.register_encrypted("healthchecks.HealthCheck.secrets", checks.rotate_secrets)
        # A web process counting its answers alone (no Redis) adapts its rate limits itself.
        from healthchecks.watch import stress
        from portal import ratelimit

        ratelimit.register_adapter(stress.adapt)
        # A check's audit entries name it "<service>/<check>": its service's team owns it.
        from portal import audit

        audit.register_teams("check", audit.by_service(lambda target: target.split("/", 1)[0]))

from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """Acting on health: alerts, notifications, deliveries (a part above health)."""

    name = "automation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from automation import audit_teams, channels, deployments, rules
        from portal import audit, encryption
        from services import signals

        encryption.register_encrypted("automation.NotificationChannel.url", channels.rotate_urls)
        encryption.register_encrypted("automation.Rule.secrets", rules.rotate_secrets)
        signals.deployment_reported.connect(
            deployments.on_reported, dispatch_uid="automation-deployment-reported"
        )
        signals.deployment_verified.connect(
            deployments.on_verified, dispatch_uid="automation-deployment-verified"
        )
        # Which teams own what automation's audit entries name (the audit trail's team).
        audit.register_teams("alert", audit_teams.of_alerts)
        audit.register_teams("notification_channel", audit_teams.of_channels)
        audit.register_teams("rule", audit_teams.of_rules)

from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """Acting on health: alerts, notifications, deliveries (a part above health)."""

    name = "automation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from automation import channels, rules
        from portal import encryption

        encryption.register_encrypted("automation.NotificationChannel.url", channels.rotate_urls)
        encryption.register_encrypted("automation.Rule.secrets", rules.rotate_secrets)

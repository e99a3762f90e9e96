from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "services"
    verbose_name = "Service registry"

    def ready(self) -> None:
        from portal import encryption
        from services import configs

        encryption.register_encrypted("services.ConfigVersion.values", configs.rotate_secrets)

from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "services"
    verbose_name = "Service registry"

    def ready(self) -> None:
        from portal import encryption
        from portal.ownership import Ownership
        from services import configs, queries

        encryption.register_encrypted("services.ConfigVersion.values", configs.rotate_secrets)
        Ownership.register(
            user_teams=queries.teams_of_user,
            team_services=queries.services_of_teams,
            teams_named=queries.teams_named,
            services_named=queries.services_named,
        )

from django.apps import AppConfig


class ServicesConfig(AppConfig):
    name = "services"
    verbose_name = "Service registry"

    def ready(self) -> None:
        from portal import audit, encryption
        from portal.ownership import Ownership
        from services import audit_teams, configs, queries

        encryption.register_encrypted("services.ConfigVersion.values", configs.rotate_secrets)
        Ownership.register(
            user_teams=queries.teams_of_user,
            team_services=queries.services_of_teams,
            teams_named=queries.teams_named,
            services_named=queries.services_named,
        )
        # A sign-in through the identity provider sets the person's teams from its groups.
        from portal.directory import TeamMembership
        from services import membership

        TeamMembership.register(sync=membership.sync_teams)
        # Which teams own what the registry's audit entries name (the audit trail's team).
        audit.register_teams("service", audit_teams.of_services)
        audit.register_teams("team", audit_teams.of_teams)
        audit.register_teams("maintenance_window", audit_teams.of_windows)

"""What each role may do in the admin: the Django model permissions of the role groups.

A role is a group (``viewer``, ``operator``, ``admin``; portal.auth maps each to API scopes).
Its permissions here describe the same role for the admin, and the admin checks both
(portal.admin_base.ScopedAdmin): a permission granted by hand beyond a role does not let a
person do what the role's scopes forbid through the API.

- viewer: sees the registry, configurations, health records, alerts and checklists.
- operator: also edits services, their dependencies, checks and notification channels,
  plans maintenance windows, acknowledges alerts, reads the audit log
  (configurations are edited from the service's page, with ``config:write``; checklists
  are ticked on their pages, with ``checklists:write``).
- admin: everything, users and groups and the checklists' routines included (tokens are
  created by admins only).
"""

from fnmatch import fnmatchcase

from django.contrib.auth.management import create_permissions

VIEWER = [
    "services.view_*",
    "healthchecks.view_*",
    "automation.view_*",
    "checklists.view_*",
    "portal.view_heartbeat",
]
OPERATOR = [
    *VIEWER,
    "services.add_service",
    "services.change_service",
    "services.delete_service",
    "services.add_dependency",
    "services.change_dependency",
    "services.delete_dependency",
    "healthchecks.add_healthcheck",
    "healthchecks.change_healthcheck",
    "healthchecks.delete_healthcheck",
    "portal.view_auditentry",
    "automation.add_notificationchannel",
    "automation.change_notificationchannel",
    "automation.delete_notificationchannel",
    "services.add_maintenancewindow",
    "services.delete_maintenancewindow",
]
ADMIN = ["portal.*", "services.*", "healthchecks.*", "automation.*", "checklists.*", "auth.*"]
ROLE_PERMISSIONS = {"viewer": VIEWER, "operator": OPERATOR, "admin": ADMIN}


def grant_role_permissions(apps) -> None:
    """Give each role group exactly its permissions (for migrations: ``apps`` is theirs).
    Permissions are created first: on a new database they appear only after migrate."""
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    every = list(Permission.objects.select_related("content_type"))
    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            p
            for p in every
            if any(fnmatchcase(f"{p.content_type.app_label}.{p.codename}", x) for x in patterns)
        )

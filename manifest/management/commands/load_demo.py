from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from manifest import apply as manifests
from manifest.demo import DEMO_CONFIGS, DEMO_LIFECYCLE, DEMO_SCHEMA, demo_manifest
from manifest.schemas import ManifestIn
from portal.auth import system_actor
from services import configs, deployments, lifecycle
from services.models import Team


class Command(BaseCommand):
    help = (
        "Load the demo registry, with checks against the portal's own /demo/ targets "
        "(idempotent). With DEBUG on, also demo logins: admin, operator (of payments) and "
        "viewer, each with its name as password."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=None,
            help="Where the demo checks find the /demo/ targets: the web server's address "
            "(default: DEMO_BASE_URL). `make run PORT=...` passes its own.",
        )

    def handle(self, *args, base_url=None, **options):
        actor = system_actor("load_demo")
        manifest = demo_manifest((base_url or settings.DEMO_BASE_URL).rstrip("/"))
        result = manifests.apply(ManifestIn.model_validate(manifest), actor)
        for name in result.as_dict()["created"]:
            for status in DEMO_LIFECYCLE.get(name, []):
                lifecycle.transition(name, status, "demo data", actor)
        if "payments" in result.as_dict()["created"]:
            self._demo_config(actor)
        created = result.as_dict()["created"]
        self.stdout.write(
            f"Demo registry: {len(manifest['services'])} services ({len(created)} new)."
        )
        if settings.DEBUG:
            self._demo_user()

    def _demo_config(self, actor) -> None:
        """Two configuration versions, the first one deployed: payments shows drift."""
        configs.put_schema("payments", DEMO_SCHEMA, actor, comment="the seed's example")
        for number, values in enumerate(DEMO_CONFIGS):
            configs.publish("payments", values, number, actor, comment="demo data")
            if number == 0:
                deployments.report(
                    "payments",
                    version="2024.11.2",
                    status="succeeded",
                    config_version=1,
                    config_hash="",
                    link="",
                    actor=actor,
                )

    def _demo_user(self) -> None:
        """An admin, an operator of the payments team and a viewer, to try each role."""
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.invalid", "admin")
            self.stdout.write("Demo login: admin / admin (DEBUG only; change it).")
        for name, role in (("operator", "operator"), ("viewer", "viewer")):
            if User.objects.filter(username=name).exists():
                continue
            user = User.objects.create_user(name, f"{name}@example.invalid", name, is_staff=True)
            user.groups.add(Group.objects.get(name=role))
            if role == "operator":
                Team.objects.get(name="payments").members.add(user)
            self.stdout.write(f"Demo login: {name} / {name} ({role}; DEBUG only).")

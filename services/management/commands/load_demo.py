from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from portal.auth import system_actor
from services import lifecycle, registry
from services.demo import DEMO_LIFECYCLE, DEMO_MANIFEST
from services.models import Service
from services.schemas import ManifestIn


class Command(BaseCommand):
    help = "Load the demo registry (idempotent). With DEBUG on, also a demo login admin/admin."

    def handle(self, *args, **options):
        actor = system_actor("load_demo")
        result = registry.apply_manifest(ManifestIn.model_validate(DEMO_MANIFEST), actor)
        for name in result.as_dict()["created"]:
            for status in DEMO_LIFECYCLE.get(name, []):
                lifecycle.transition(name, status, "demo data", actor)
        self.stdout.write(
            f"Demo registry: {Service.objects.count()} services "
            f"({len(result.as_dict()['created'])} new)."
        )
        if settings.DEBUG:
            self._demo_user()

    def _demo_user(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.invalid", "admin")
            self.stdout.write("Demo login: admin / admin (DEBUG only; change it).")

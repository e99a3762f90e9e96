import json
import sys
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError
from pydantic import ValidationError

from manifest import apply as manifests
from manifest.schemas import ManifestIn
from portal.auth import system_actor
from portal.errors import PortalError, field_path


def read_manifest(path: str) -> ManifestIn:
    """Parse a YAML (or JSON, which is YAML) manifest file, with readable errors."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        document = yaml.safe_load(text)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CommandError(f"{path} is not valid YAML: {exc}") from None
    except RecursionError:  # the YAML reader recurses per level: ~250 nested lists fill it
        raise CommandError(f"{path} is nested too deeply to read") from None
    if not isinstance(document, dict):
        raise CommandError(f"{path}: a manifest is a mapping with 'teams' and 'services'")
    try:
        return ManifestIn.model_validate(document)
    except ValidationError as exc:
        lines = [f"  {field_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise CommandError(f"{path} is not a valid manifest:\n" + "\n".join(lines)) from None


class Command(BaseCommand):
    help = "Apply a registry manifest (YAML or JSON) atomically: all of it or nothing."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Manifest file, or - for standard input")

    def handle(self, *args, path, **options):
        manifest = read_manifest(path)
        try:
            result = manifests.apply(manifest, system_actor("apply_manifest")).as_dict()
        except PortalError as exc:
            lines = [f"  {k}: {v}" for k, v in exc.fields.items()]
            raise CommandError("\n".join([exc.message, *lines])) from None
        self.stdout.write(json.dumps(result, indent=2))

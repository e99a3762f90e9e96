#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting is missing or wrong: one line saying which, not a traceback.
        sys.stderr.write(
            f"manage.py: {exc}\n(for local development, `make run` once writes .env with "
            "DEBUG=true and a generated SECRET_KEY)\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()

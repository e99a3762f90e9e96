"""Which changed files restart runserver (portal.devreload, issue 28, item 2): the checkout's
code does, an installation never does -- the editable install's finder that `make test`'s
`pip install -e '.[dev]'` writes again restarted `make run`'s web server. The whole of it,
through processes: tests/system/test_make_test_beside_make_run.py."""

import json
import sys
import sysconfig
from pathlib import Path

from django.conf import settings
from django.utils.autoreload import file_changed

from portal import devreload

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
STDLIB = Path(json.__file__)


def restarts(path: Path) -> bool:
    """What Django's reloader does with a changed file: restart unless a receiver of
    file_changed says it handled it."""
    return not any(handled for _, handled in file_changed.send(sender=None, file_path=path))


def test_the_editable_install_and_the_installed_packages_restart_nothing():
    finder = next(SITE_PACKAGES.glob("__editable___*_finder.py"))
    assert not restarts(finder)
    assert not restarts(Path(sys.modules["django"].__file__))
    assert not restarts(STDLIB)


def test_the_checkouts_code_and_a_folder_of_ones_own_restart_the_server(tmp_path):
    assert restarts(settings.BASE_DIR / "portal" / "apps.py")
    own = tmp_path / "mine.py"
    own.write_text("")
    assert restarts(own)


def test_a_checkout_inside_a_pythons_prefix_is_still_code(monkeypatch, tmp_path):
    """`/usr/src/app` beside a Python in `/usr`: the checkout is the nearer folder."""
    prefix = tmp_path / "usr"
    checkout = prefix / "src" / "app"
    installed = prefix / "lib" / "python3" / "dist-packages"
    monkeypatch.setattr(devreload, "installations", lambda: (prefix, installed))
    monkeypatch.setattr(settings, "BASE_DIR", checkout)
    assert not devreload.belongs_to_an_installation(checkout / "portal" / "apps.py")
    assert devreload.belongs_to_an_installation(installed / "django" / "__init__.py")
    assert devreload.belongs_to_an_installation(prefix / "lib" / "python3" / "json.py")
    # and the checkout's own virtual environment is an installation inside the checkout
    monkeypatch.setattr(devreload, "installations", lambda: (checkout / ".venv",))
    assert devreload.belongs_to_an_installation(checkout / ".venv" / "lib" / "x.py")

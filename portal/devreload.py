"""runserver's reloader restarts for the code being worked on, never for an installation.

Django's reloader watches every imported module and restarts the server when one changes.
Among them are the installed packages -- and the editable install's finder, which
`pip install -e .` writes again on every install: `make test`, which installs the dev
dependencies, restarted the web server of a `make run` running beside it, and for the 4 s
it took every demo check failed and opened incidents (issue 28, item 2).

A changed file restarts the server unless it belongs to an installation: the Python
installation, the virtual environment (`sys.prefix`, wherever it lies) or a site-packages
folder on the path. A file belongs to the most specific of these folders and the checkout
(BASE_DIR) that holds it, so `.venv/` inside the checkout is an installation while the
checkout's own code is not, even where the checkout lies inside a Python installation's
prefix (`/usr/src/app` beside a `/usr` Python). A file in none of them (a folder of your own
on PYTHONPATH) restarts the server, as Django has it. After upgrading a package, restart
`make run` by hand.
"""

import site
import sys
from functools import cache
from pathlib import Path

from django.conf import settings

SITE_FOLDERS = ("site-packages", "dist-packages")


@cache
def installations() -> tuple[Path, ...]:
    """The folders an installer writes: prefixes and every site-packages folder."""
    folders = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    folders.update(site.getsitepackages())
    folders.add(site.getusersitepackages())
    folders.update(p for p in sys.path if Path(p).name in SITE_FOLDERS)
    return tuple(sorted({Path(f).resolve() for f in folders if f}))


def belongs_to_an_installation(path: Path) -> bool:
    path = path.resolve()
    checkout = Path(settings.BASE_DIR).resolve()
    holders = [(folder, True) for folder in installations() if path.is_relative_to(folder)]
    if path.is_relative_to(checkout):
        holders.append((checkout, False))
    if not holders:
        return False
    _, installed = max(holders, key=lambda holder: len(holder[0].parts))
    return installed


def ignore_installations(sender, file_path, **kwargs) -> bool:
    """Django's ``file_changed`` signal: True (handled, no restart) for a file that belongs to
    an installation."""
    return belongs_to_an_installation(Path(file_path))

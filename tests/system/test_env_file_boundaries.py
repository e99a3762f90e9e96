"""`make run` leaves a `.env` behind (docs/decisions.md), and only the commands typed beside it
read it: the image is built without it (production still needs a real key), and `make test`
and `make bench` read none (PORTAL_ENV_FILE=), so a developer's `.env` never points the suite
or a benchmark at their own database."""

import re
import subprocess

from django.conf import settings

BASE = settings.BASE_DIR


def commands(target: str) -> list[str]:
    """What `make <target>` would run, one command a line (continuations joined)."""
    plan = subprocess.run(
        ["make", "-n", target], cwd=BASE, capture_output=True, text=True, timeout=60
    )
    assert plan.returncode == 0, plan.stderr
    return plan.stdout.replace("\\\n", " ").splitlines()


def test_the_image_make_test_and_make_bench_read_no_env_file():
    ignored = (BASE / ".dockerignore").read_text().split()
    assert ".env" in ignored  # the build context, hence the image, has none

    for target, runs in (("test", r"-m pytest"), ("bench", r"bench/run\.py")):
        found = [c for c in commands(target) if re.search(runs, c)]
        assert found, f"make {target} runs nothing like {runs}"
        for command in found:
            assert re.match(r"\s*PORTAL_ENV_FILE= ", command), command

"""The Dockerfile, docker-compose.yml and .env.example agree with the settings.

No Docker engine runs here, so images are not built; what can be checked is: the compose file
against the Compose specification's schema, the Dockerfile with hadolint, and that every
variable the settings read is documented and every variable compose sets is one the settings
read.
"""

import re
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

BASE = Path(settings.BASE_DIR)
BIN = Path(sys.executable).parent


def setting_names() -> set[str]:
    source = (BASE / "portal" / "settings.py").read_text()
    return set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', source))


def compose() -> dict:
    return yaml.safe_load((BASE / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_schema():
    result = subprocess.run(
        [
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            BASE / "docker-compose.yml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [BIN / "hadolint", "--failure-threshold", "info", BASE / "Dockerfile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_part_with_health_checks_and_ordered_start():
    services = compose()["services"]
    assert {"db", "redis", "web", "worker", "dispatcher", "beat"} <= set(services)
    for name in ("db", "redis", "worker", "dispatcher", "beat"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker", "dispatcher", "beat"):
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    dockerfile = (BASE / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "/health/" in dockerfile


def test_compose_sets_only_variables_the_settings_read():
    env = compose()["x-portal"]["environment"]
    assert set(env) <= setting_names()
    assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis")


def test_every_setting_is_documented():
    documented_env = set(
        re.findall(r"^([A-Z0-9_]+)=", (BASE / ".env.example").read_text(), re.MULTILINE)
    )
    readme = (BASE / "README.md").read_text()
    names = setting_names()
    assert names - documented_env == set()
    assert {n for n in names if f"`{n}`" not in readme} == set()

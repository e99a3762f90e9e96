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


K8S = BASE / "deploy" / "k8s"


def k8s_documents() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk  # every manifest applied, none listed that is missing
    return [doc for name in listed for doc in yaml.safe_load_all((K8S / name).read_text())]


def test_the_kubernetes_manifests_follow_the_kubernetes_schemas():
    """Offline, with the schemas kubernetes-validate ships (strict: unknown fields fail)."""
    import kubernetes_validate

    documents = k8s_documents()
    for document in documents:
        kubernetes_validate.validate(document, "1.30", strict=True)
    broken = {**documents[0], "spec": {"replicas": "three"}}
    try:
        kubernetes_validate.validate(broken, "1.30", strict=True)
    except kubernetes_validate.ValidationError:
        pass  # it does refuse what is wrong
    else:
        raise AssertionError("an invalid manifest passed")


def _deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}


def test_the_web_probes_and_the_two_beats_are_as_the_seed_and_the_portal_need():
    deployments = _deployments()
    web = deployments["portal-web"]
    assert web["spec"]["replicas"] == 3
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/service/backend"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/"
    beat = deployments["portal-beat"]
    assert beat["spec"]["replicas"] == 2  # one active, one standing by on the lease
    # A rolling update never leaves no beat: the new one starts, then the old one hands over.
    assert beat["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    spread = beat["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = spread["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = beat["spec"]["template"]["metadata"]["labels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels
    budgets = {
        d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "PodDisruptionBudget"
    }
    assert budgets["portal-beat"]["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": labels},
    }
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            # The seed's resources.
            assert c["resources"] == {
                "requests": {"memory": "256Mi", "cpu": "250m"},
                "limits": {"memory": "512Mi", "cpu": "500m"},
            }, name
    kinds = {d["kind"] for d in k8s_documents()}
    assert {"Job", "Service", "Ingress", "ConfigMap", "Secret"} <= kinds
    assert {"PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds


def test_the_kubernetes_config_sets_only_variables_the_settings_read():
    documents = {d["metadata"]["name"]: d for d in k8s_documents()}
    names = set(documents["portal-config"]["data"]) | set(documents["portal-secrets"]["stringData"])
    assert names - setting_names() - {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} == set()

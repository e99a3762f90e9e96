"""The Dockerfile, docker-compose.yml and .env.example agree with the settings.

No Docker engine runs here, so images are not built; what can be checked is: the compose file
against the Compose specification's schema, the Dockerfile with hadolint, and that every
variable the settings read is documented and every variable compose sets is one the settings
read.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            if (name, c["name"]) == ("portal-probe-worker", "probe-worker"):
                continue  # measured: test_the_probe_workers_memory_is_set_from_its_measurement
            # The seed's resources.
            assert c["resources"] == {
                "requests": {"memory": "256Mi", "cpu": "250m"},
                "limits": {"memory": "512Mi", "cpu": "500m"},
            }, name
    kinds = {d["kind"] for d in k8s_documents()}
    assert {"Service", "Ingress", "ConfigMap", "NetworkPolicy"} <= kinds
    assert {"PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    # No Secret and no Job: `apply -k` never overwrites a Secret a secret manager made, and
    # migrations run in the web pods' init container (test_the_upgrade_order_is_in_the_pods).
    assert not kinds & {"Secret", "Job"}


OVERLAY = BASE / "deploy" / "overlays" / "example"


def env_file(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", path.read_text(), re.MULTILINE))


def test_the_kubernetes_config_sets_only_variables_the_settings_read():
    documents = {d["metadata"]["name"]: d for d in k8s_documents()}
    names = set(documents["portal-config"]["data"]) | set(env_file(OVERLAY / "portal-secrets.env"))
    assert names - setting_names() - {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} == set()
    # Django's own createsuperuser variables, read by `manage.py upgrade` only.
    assert set(env_file(OVERLAY / "first-admin.env")) == {
        "DJANGO_SUPERUSER_USERNAME",
        "DJANGO_SUPERUSER_EMAIL",
        "DJANGO_SUPERUSER_PASSWORD",
    }


def test_the_secret_is_made_apart_from_the_base():
    """The base applies no Secret; the example overlay generates both from env files, with
    the key, the Fernet key (the operator's guide asks for one), the database and Redis."""
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../k8s"]
    generated = {g["name"]: g["envs"] for g in overlay["secretGenerator"]}
    assert generated == {
        "portal-secrets": ["portal-secrets.env"],
        "portal-first-admin": ["first-admin.env"],
    }
    secrets = env_file(OVERLAY / "portal-secrets.env")
    assert set(secrets) == {"SECRET_KEY", "CONFIG_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL"}
    assert all("replace-me" in value for value in secrets.values())
    for deployment in _deployments().values():
        pod = deployment["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            refs = [e["secretRef"] for e in c["envFrom"] if "secretRef" in e]
            assert {"name": "portal-secrets"} in refs, c["name"]
            if c["name"] != "upgrade":  # the first admin's password reaches no other container
                assert all(r["name"] == "portal-secrets" for r in refs), c["name"]


def test_the_example_overlay_builds_as_kubectl_apply_k_reads_it():
    """kustomize refuses an overlay inside the directory of a base it names ("cycle detected:
    candidate root ... contains visited root"), so `kubectl apply -k` of an overlay under
    deploy/k8s failed before applying anything: the overlay lives beside the base."""
    base = K8S.resolve()
    for reference in yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["resources"]:
        assert not OVERLAY.resolve().is_relative_to((OVERLAY / reference).resolve()), reference
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the layout above is what kustomize needs")
    built = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(built.stdout)]
    assert len([k for k in kinds if k[0] == "Secret"]) == 2, kinds
    assert (
        subprocess.run(
            [kubectl, "kustomize", str(base)], capture_output=True, timeout=120
        ).returncode
        == 0
    )


def test_the_upgrade_order_is_in_the_pods():
    """The web pods migrate before they serve (an init container running `manage.py
    upgrade`); every other part except beat waits until the schema is this release's."""
    deployments = _deployments()
    (upgrade,) = deployments["portal-web"]["spec"]["template"]["spec"]["initContainers"]
    assert upgrade["command"] == ["python", "manage.py", "upgrade"]
    assert {"name": "portal-first-admin", "optional": True} in [
        e["secretRef"] for e in upgrade["envFrom"] if "secretRef" in e
    ]
    for name in ("portal-probe-worker", "portal-dispatcher", "portal-automation"):
        (wait,) = deployments[name]["spec"]["template"]["spec"]["initContainers"]
        assert "manage.py migrate --check" in wait["command"][-1], name
    # compose: the one-shot migrate service runs the same step, every other one waits for it.
    migrate = compose()["services"]["migrate"]
    assert migrate["command"] == ["python", "manage.py", "upgrade"]
    assert {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"} <= set(migrate["environment"])


def project_version() -> str:
    import tomllib

    return tomllib.loads((BASE / "pyproject.toml").read_text())["project"]["version"]


def test_the_image_is_a_pinned_version_and_the_ingress_names_its_class():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["newTag"] == project_version() != "latest"
    assert compose()["x-portal"]["image"] == f"service-portal:{project_version()}"
    (ingress,) = [d for d in k8s_documents() if d["kind"] == "Ingress"]
    assert ingress["spec"]["ingressClassName"]


def test_the_seeds_variables_are_set_with_the_settings_defaults():
    """ENABLE_HEALTH_AUTOMATION, HEALTH_CHECK_INTERVAL and SERVICE_CONFIG_VALIDATION_LEVEL, as
    the seed's compose file and Deployment show them, with the values the settings default to."""
    seed = {
        "ENABLE_HEALTH_AUTOMATION": ("true", True),
        "HEALTH_CHECK_INTERVAL": ("30", 30),
        "SERVICE_CONFIG_VALIDATION_LEVEL": ("strict", "strict"),
    }
    configmap = {d["metadata"]["name"]: d for d in k8s_documents()}["portal-config"]["data"]
    env = compose()["x-portal"]["environment"]
    for name, (text, default) in seed.items():
        assert configmap[name] == text, name
        assert env[name] == f"${{{name}:-{text}}}", name
        assert getattr(settings, name) == default, name


def test_the_probe_workers_memory_is_set_from_its_measurement():
    """bench/worker_memory.py measured the probe worker at -c 8 (9 processes): its request
    covers the median it held and its limit the largest, with room (docs/operating.md)."""
    import json

    measured = json.loads((BASE / "bench" / "results" / "worker_memory.json").read_text())
    worker = _deployments()["portal-probe-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert "--concurrency=8" in worker["command"] and measured["concurrency"] == 8
    assert measured["processes"] == 9

    def mib(quantity: str) -> float:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
        return int(number) * (1024 if unit == "Gi" else 1)

    request, limit = worker["resources"]["requests"], worker["resources"]["limits"]
    assert mib(request["memory"]) >= measured["pss_mib_median"]
    assert mib(limit["memory"]) >= 1.3 * measured["pss_mib_max"]


CHECKOV = Path(sys.executable).parent.parent / "checkov" / "bin" / "checkov"


def test_checkov_passes_with_every_skip_given_its_reason():
    """`make policy` (in `make lint`): checkov over deploy/, the Dockerfile and
    docker-compose.yml with .checkov.yaml, each skipped rule preceded by its reason."""
    lines = (BASE / ".checkov.yaml").read_text().splitlines()
    config = yaml.safe_load("\n".join(lines))
    assert set(config["directory"]) == {"deploy"}
    assert set(config["file"]) == {"Dockerfile", "docker-compose.yml"}
    for rule in config["skip-check"]:
        at = lines.index(f"  - {rule}")
        assert lines[at - 1].strip().startswith("#"), f"{rule} is skipped without a reason"
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: `make policy` installs it")
    result = subprocess.run(
        [CHECKOV, "--config-file", ".checkov.yaml"],
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout

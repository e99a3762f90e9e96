"""The README ("Running it for real", Kubernetes): the pods run non-root on a read-only root
filesystem with an ``emptyDir`` on ``/tmp`` -- every pod the manifests make and every
container in it (init containers too), the web's included, so nothing that writes a
temporary file (gunicorn's heartbeat files, Celery, Python) fails on a read-only disk."""

from tests.test_deploy_files import k8s_documents


def test_every_read_only_pod_has_an_empty_dir_on_tmp():
    pods = {}
    for document in k8s_documents():
        if document["kind"] in ("Deployment", "Job"):
            pods[document["metadata"]["name"]] = document["spec"]["template"]["spec"]
    assert {"portal-web", "portal-beat", "portal-probe-worker"} <= set(pods)
    for name, pod in pods.items():
        scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in scratch, (name, container["name"])  # noqa: S108

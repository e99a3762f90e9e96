"""Breaking trial of "a schema nested past what validation follows is refused when saved"
(issue 28, item 9): manifests deeper than the YAML reader can follow, from the management
command and portalctl; a loop of references that steps into the document, long enough to
make a shallow document uncheckable."""

import json
import sys

import pytest
from click.testing import CliRunner
from django.core.management import CommandError, call_command

from portalctl.cli import cli
from services.models import ConfigSchema, Service
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db
URL = "/api/services/svc/config"


def nested(levels: int, step) -> dict:
    schema = {"type": "string"}
    for _ in range(levels):
        schema = step(schema)
    return {"type": "object", "properties": {"x": schema}}


def manifest_text(schema: dict) -> str:
    """A manifest in flow style (JSON is YAML) carrying ``schema`` inline."""
    manifest = {
        "teams": [{"name": "core"}],
        "services": [{"name": "svc", "team": "core", "config": {"schema": schema}}],
    }
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # the writer, here, only
    try:
        return json.dumps(manifest)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("levels", "step"),
    [(400, lambda s: {"allOf": [s]}), (1000, lambda s: {"not": s})],
    ids=["allOf-400", "not-1000"],
)
def test_apply_manifest_refuses_a_manifest_too_deep_to_read_with_a_message(tmp_path, levels, step):
    """The YAML reader recurses per level: ~250 nested lists (or ~480 mappings) ended
    `manage.py apply_manifest` in a RecursionError traceback, before any schema check."""
    path = tmp_path / "deep.yaml"
    path.write_text(manifest_text(nested(levels, step)))
    with pytest.raises(CommandError, match="nested too deeply to read"):
        call_command("apply_manifest", str(path))
    assert not Service.objects.exists()


def test_apply_manifest_refuses_a_readable_schema_nested_too_deeply(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(manifest_text(nested(300, lambda s: {"not": s})))
    with pytest.raises(CommandError, match="nested too deeply"):
        call_command("apply_manifest", str(path))
    assert not ConfigSchema.objects.exists()


def test_portalctl_refuses_a_file_too_deep_to_read_with_a_message(tmp_path):
    """Read before anything is sent: no portal is needed (nothing listens at the URL)."""
    path = tmp_path / "deep.yaml"
    path.write_text(manifest_text(nested(400, lambda s: {"allOf": [s]})))
    environ = {"PORTAL_URL": "http://127.0.0.1:9", "PORTAL_TOKEN": "x"}
    result = CliRunner().invoke(cli, ["apply", str(path)], env=environ)
    assert result.exit_code == 2, result.output
    assert "nested too deeply to read" in result.output
    assert not isinstance(result.exception, RecursionError)


def reference_loop(hops: int) -> dict:
    """A recursive schema the nesting check accepts: `x` is an object whose `c` is an `x`
    again, reached through ``hops`` definitions each in `not`/`not` -- the loop steps into
    the document, so it is not counted, and its length stays under MAX_NESTING."""
    defs = {f"d{i}": {"not": {"not": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(hops)}
    defs[f"d{hops}"] = {"type": "object", "properties": {"c": {"$ref": "#/$defs/d0"}}}
    return {"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}}


def nested_document(levels: int) -> dict:
    document: dict = {}
    for _ in range(levels):
        document = {"c": document}
    return document


def test_a_loop_too_long_for_the_documents_the_api_takes_is_refused_when_saved(make_token):
    """Found in the trial: 30 hops of not/not per level were accepted (the loop steps into
    the document, so the acyclic count skipped it), then a document five levels deep was
    schema_too_costly at every validation. Now refused when saved, naming why."""
    ServiceFactory(name="svc")
    client = ApiClient(make_token(["config:read", "config:write"]).secret)
    res = client.call("PUT", f"{URL}/schema", reference_loop(30))
    assert res.status_code == 422, res.content
    error = res.json()["error"]
    assert error["message"] == "the schema nests too deeply to validate"
    (reason,) = error["fields"].values()
    assert "API_MAX_JSON_DEPTH" in reason and "loop" in reason
    assert not ConfigSchema.objects.exists()


@pytest.mark.parametrize(("hops", "depth"), [(0, 32), (1, 16)])
def test_a_recursive_schema_accepted_validates_the_deepest_document_the_api_takes(
    make_token, settings, hops, depth
):
    """The property behind the refusal: whatever the check lets through validates every
    document the API lets in. Each pair is the longest loop of its kind accepted at that
    API_MAX_JSON_DEPTH (one more hop is refused); at the full depth the document validates."""
    settings.API_MAX_JSON_DEPTH = depth
    ServiceFactory(name="svc")
    client = ApiClient(make_token(["config:read", "config:write"]).secret)
    stored = client.call("PUT", f"{URL}/schema", reference_loop(hops))
    assert stored.status_code == 201, stored.content
    deepest = settings.API_MAX_JSON_DEPTH - 3  # the body, values and x take three levels
    res = client.call("POST", f"{URL}/validate", {"values": {"x": nested_document(deepest)}})
    assert res.status_code == 200, res.content
    assert res.json()["valid"] is True, res.content
    longer = client.call("PUT", f"{URL}/schema", reference_loop(hops + 1))
    assert longer.status_code == 422, longer.content


def test_a_tree_schema_is_accepted_at_the_default_depth(make_token):
    """The usual recursive schema -- a node with children of its own kind -- stays accepted."""
    ServiceFactory(name="svc")
    client = ApiClient(make_token(["config:read", "config:write"]).secret)
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            }
        },
        "properties": {"tree": {"$ref": "#/$defs/node"}},
    }
    assert client.call("PUT", f"{URL}/schema", tree).status_code == 201
    document: dict = {}
    for _ in range(13):
        document = {"children": [document]}
    res = client.call("POST", f"{URL}/validate", {"values": {"tree": document}})
    assert res.status_code == 200 and res.json()["valid"] is True, res.content

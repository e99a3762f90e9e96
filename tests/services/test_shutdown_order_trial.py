"""Breaking trial of the shutdown order's dependents (issue 28, item 7): soft loops and a
service depending on itself, and a token limited to one service asking about others."""

import pytest

from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db

ESTATE = {
    "teams": [{"name": "t"}],
    "services": [
        {"name": "mine", "team": "t"},
        {"name": "web", "team": "t", "dependencies": [{"service": "mine", "kind": "soft"}]},
        {"name": "hidden", "team": "t", "dependencies": ["web"]},
    ],
}


@pytest.fixture
def api(make_token):
    client = ApiClient(make_token(["registry:read", "registry:write"]).secret)
    assert client.call("POST", "/api/registry/apply", ESTATE).status_code == 200
    return client


def test_a_loop_through_soft_edges_and_a_soft_edge_onto_itself_are_refused(api):
    loop = api.call("PUT", "/api/services/mine/dependencies/web", {"kind": "soft"})
    assert loop.status_code == 422 and loop.json()["error"]["code"] == "dependency_cycle"
    itself = api.call("PUT", "/api/services/mine/dependencies/mine", {"kind": "soft"})
    assert itself.status_code == 422
    order = api.call("GET", "/api/registry/shutdown-order?service=mine").json()
    assert order["dependents"] == [
        {"service": "hidden", "kind": "soft"},  # hard onto web, soft onto mine: soft
        {"service": "web", "kind": "soft"},
    ]


@pytest.mark.parametrize("route", ["shutdown-order", "startup-order"])
def test_a_service_outside_a_limited_tokens_reach_is_404_in_the_orders(make_token, api, route):
    """`GET /api/services/hidden` answers a token limited to `mine` 404 ("the rest answers
    404: a pipeline has no business learning the estate"), but
    `shutdown-order?service=hidden` answered 200 with its order and dependents: whether it
    exists and what it needs. Asked of its own service, it still reads the order."""
    limited = ApiClient(make_token(["registry:read"], services=["mine"]).secret)
    assert limited.call("GET", "/api/services/hidden").status_code == 404
    outside = limited.call("GET", f"/api/registry/{route}?service=hidden")
    assert outside.status_code == 404, outside.content
    assert outside.json()["error"]["code"] == "not_found"
    unknown = limited.call("GET", f"/api/registry/{route}?service=nothing-here")
    assert unknown.status_code == 404  # the same answer: existence is not told apart
    own = limited.call("GET", f"/api/registry/{route}?service=mine")
    assert own.status_code == 200 and "mine" in own.json()["order"]

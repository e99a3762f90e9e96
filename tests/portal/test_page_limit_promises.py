"""The README's figure for the lists it names: `GET /api/services` and `GET /api/alerts`
take a `limit` of at most 500 (`<= 500`): 500 is served, 501 is a 422 naming `limit`.
(test_list_pages.py holds every paged list to the maximum its OpenAPI document declares;
this holds the document to the README.)"""

import pytest

from portal.models import Scope
from tests.conftest import ApiClient

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.mark.parametrize("path", ["/api/services", "/api/alerts"])
def test_a_list_the_readme_bounds_takes_a_limit_up_to_500(make_token, path):
    client = ApiClient(make_token(list(Scope.values)).secret)
    served = client.call("GET", f"{path}?limit=500")
    assert served.status_code == 200 and served.json()["limit"] == 500
    refused = client.call("GET", f"{path}?limit=501")
    assert refused.status_code == 422 and "limit" in refused.json()["error"]["fields"]

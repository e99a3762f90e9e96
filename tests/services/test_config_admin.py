"""Editing configuration in the admin: a form from the schema, errors on their fields."""

import pytest

from portal.auth import system_actor
from services import configs
from services.models import ConfigVersion
from tests.factories import ServiceFactory, seed_schema_with_secret

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")
SCHEMA = seed_schema_with_secret()


@pytest.fixture
def page(client, admin_user):
    client.force_login(admin_user)
    service = ServiceFactory(name="legacy-service")
    configs.put_schema("legacy-service", SCHEMA, ACTOR)
    return f"/admin/services/service/{service.pk}/config/"


def form_data(base_version=0, **values):
    data = {"base_version": base_version, "comment": "from the admin", "extra_values": ""}
    data.update({f"values__{k}": v for k, v in values.items()})
    return data


def test_the_form_has_a_field_per_schema_entry(client, page):
    html = client.get(page).content.decode()
    for name in (
        "values__api_timeout",
        "values__log_level",
        "values__enable_caching",
        "values__db_password",
    ):
        assert f'name="{name}"' in html
    assert 'type="password"' in html and "Validation level: <strong>strict" in html


def test_saving_stores_a_version_with_defaults(client, page):
    res = client.post(
        page, form_data(api_timeout="45", log_level="DEBUG", db_password="topsecret-1")
    )
    assert res.status_code == 302
    version = ConfigVersion.objects.get()
    assert version.author == "user:root" and version.comment == "from the admin"
    values = configs.reveal(version)
    assert values["api_timeout"] == 45 and values["log_level"] == "DEBUG"
    assert values["max_retries"] == 3 and values["db_password"] == "topsecret-1"


def test_errors_land_on_their_fields(client, page):
    res = client.post(page, form_data(api_timeout="400"))
    assert res.status_code == 200
    form = res.context["form"]
    assert "values__api_timeout" in form.errors
    assert not ConfigVersion.objects.exists()


def test_the_secret_is_shown_masked_and_kept_when_the_mask_is_sent_back(client, page):
    client.post(page, form_data(api_timeout="45", db_password="topsecret-1"))
    html = client.get(page).content.decode()
    assert "topsecret-1" not in html and configs.MASK in html
    client.post(page, form_data(base_version=1, api_timeout="50", db_password=configs.MASK))
    latest = ConfigVersion.objects.order_by("-version").first()
    assert latest.version == 2 and configs.reveal(latest)["db_password"] == "topsecret-1"


def test_a_stale_form_is_refused(client, page):
    client.post(page, form_data(api_timeout="45"))
    res = client.post(page, form_data(base_version=0, api_timeout="46"))
    assert res.status_code == 200
    assert "no longer current" in str(res.context["form"].non_field_errors())
    assert ConfigVersion.objects.count() == 1


def test_history_is_read_only_with_diffs_and_rollback_is_an_action(client, page):
    client.post(page, form_data(api_timeout="45", db_password="topsecret-1"))
    client.post(page, form_data(base_version=1, api_timeout="60", db_password="other-one"))
    second = ConfigVersion.objects.get(version=2)
    detail = client.get(f"/admin/services/configversion/{second.pk}/change/").content.decode()
    assert "~ api_timeout: 45 -&gt; 60" in detail and "~ db_password (secret)" in detail
    assert "topsecret-1" not in detail and "other-one" not in detail
    first = ConfigVersion.objects.get(version=1)
    res = client.post(
        "/admin/services/configversion/",
        {"action": "roll_back_to_this_version", "_selected_action": [first.pk]},
        follow=True,
    )
    assert res.status_code == 200
    third = ConfigVersion.objects.get(version=3)
    assert third.rolled_back_from == 1
    assert configs.reveal(third)["api_timeout"] == 45


def test_an_untouched_boolean_keeps_its_value_when_another_field_changes(client, page):
    """The issue's case: enable_caching stored false (its default is true), the owner changes
    max_retries only; the new version still has enable_caching false."""
    values = {"enable_caching": False, "api_timeout": 30, "db_password": "pw-1"}
    configs.publish("legacy-service", values, 0, ACTOR)
    html = client.get(page).content.decode()
    assert '<option value="false" selected>No</option>' in html
    data = form_data(
        base_version=1,
        api_timeout="30",
        log_level="INFO",
        enable_caching="false",
        max_retries="5",
        db_password=configs.MASK,
    )
    assert client.post(page, data).status_code == 302
    latest = configs.reveal(ConfigVersion.objects.get(version=2))
    assert latest["enable_caching"] is False and latest["max_retries"] == 5


def test_saving_unchanged_says_nothing_changed(client, page):
    configs.publish("legacy-service", {"api_timeout": 30}, 0, ACTOR)
    res = client.post(page, form_data(base_version=1, api_timeout="30"), follow=True)
    assert "Nothing changed" in res.content.decode()
    assert ConfigVersion.objects.count() == 1


def test_an_emptied_field_falls_back_to_its_default(client, page):
    configs.publish("legacy-service", {"api_timeout": 30, "max_retries": 7}, 0, ACTOR)
    assert client.post(page, form_data(base_version=1, max_retries="")).status_code == 302
    assert configs.reveal(ConfigVersion.objects.get(version=2))["max_retries"] == 3


def test_undescribed_keys_nested_in_an_object_are_kept_and_editable(client, admin_user):
    service = ServiceFactory(name="nested", config_validation_level="lenient")
    schema = {"type": "object", "properties": {"db": {"type": "object", "properties": {
        "port": {"type": "integer"}}}}}  # fmt: skip
    configs.put_schema("nested", schema, ACTOR)
    configs.publish("nested", {"db": {"port": 5, "pool": 3}, "top": [1]}, 0, ACTOR)
    page = f"/admin/services/service/{service.pk}/config/"
    client.force_login(admin_user)
    assert client.post(page, {"base_version": 1, "values__db__port": "6"}).status_code == 302
    assert configs.reveal(configs.current_version(service)) == {
        "db": {"port": 6, "pool": 3},
        "top": [1],
    }
    extra = '{"db": {"pool": 4}}'
    assert client.post(page, {"base_version": 2, "extra_values": extra}).status_code == 302
    assert configs.reveal(configs.current_version(service)) == {"db": {"port": 6, "pool": 4}}
    # A described leaf is edited in its own field, not through the JSON of the others.
    res = client.post(page, {"base_version": 3, "extra_values": '{"db": {"port": 1}}'})
    assert "db.port: described by the schema" in str(res.context["form"].errors)
    assert configs.current_version(service).version == 3

"""/audit/: the audit log where people read it -- operators and admins (viewers get the 403
page, the logged-out the login) -- filtered by who, change, object, team and time range, each
object linked where it lives, a page of 50 at a time, the CSV export with the same filters;
bad filters said on the page, never a 500; and /audit/security/, the security events beside
it, for admins only."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from portal import audit, security
from portal.auth import system_actor
from portal.models import AuditEntry
from services import registry
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def log():
    """Entries a minute apart: alice (a service of core, a check), bob (a service of edge, a
    token), the edge team, and a service since deleted."""
    ServiceFactory(name="svc", team=TeamFactory(name="core"))
    ServiceFactory(name="cache", team=TeamFactory(name="edge"))
    ServiceFactory(name="gone", team__name="core")
    registry.delete_service("gone", system_actor("tests"))
    AuditEntry.objects.exclude(action="service.delete").delete()
    rows = [
        ("user:alice", "service.update", "service", "svc"),
        ("user:bob", "service.update", "service", "cache"),
        ("user:alice", "check.create", "check", "svc/http"),
        ("user:bob", "token.create", "token", "deploy"),
        ("user:alice", "team.update", "team", "edge"),
        ("user:alice", "config.publish", "service", "svc"),
    ]
    AuditEntry.objects.update(created_at=T0 - timedelta(days=1))
    ids = []
    for minute, (actor, action, target_type, target) in enumerate(rows):
        entry = audit.record(actor, action, target_type, target, {"n": minute})
        AuditEntry.objects.filter(id=entry.id).update(created_at=T0 + timedelta(minutes=minute))
        ids.append(entry.id)
    return ids


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown(answer) -> list[int]:
    assert answer.status_code == 200, answer.content[:500]
    return [int(i) for i in re.findall(r'data-entry="(\d+)"', answer.content.decode())]


def test_operators_and_admins_read_it_viewers_get_the_403_page_the_logged_out_the_login(
    log, alice, bob, admin_user
):
    assert shown(signed_in(alice).get("/audit/"))[:6] == log[::-1]
    assert shown(signed_in(admin_user).get("/audit/"))[:6] == log[::-1]
    refused = signed_in(bob).get("/audit/")
    assert refused.status_code == 403
    assert "changes:read" in refused.content.decode()
    assert b"<html" in refused.content  # the standard page, not JSON
    away = Client().get("/audit/?team=core")
    assert away.status_code == 302 and away["Location"].startswith("/accounts/login/")


def test_the_top_bar_offers_it_to_operators_and_admins_only(log, alice, bob, admin_user):
    link = '<a href="/audit/">Audit</a>'
    assert link in signed_in(alice).get("/").content.decode()
    assert link in signed_in(admin_user).get("/").content.decode()
    assert link not in signed_in(bob).get("/").content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("who=user:bob", [3, 1]),
        ("who=alice", [5, 4, 2, 0]),
        ("action=service.update", [1, 0]),
        ("action=service", [1, 0]),  # the family: every service.* (the deletion is older)
        ("target_type=check", [2]),
        ("target_type=service&target=svc", [5, 0]),
        ("team=edge", [4, 1]),
        ("team=-", [3]),
        ("since=2026-12-01T09:02&until=2026-12-01T09:04", [4, 3, 2]),
        ("since=2026-12-01T09:03:00Z", [5, 4, 3]),
    ],
)
def test_each_filter_narrows_the_list(log, alice, query, expected):
    found = shown(signed_in(alice).get("/audit/?" + query))
    assert [i for i in found if i in log] == [log[i] for i in expected]


def test_the_family_filter_includes_the_deleted_services_entry_with_its_team(log, alice):
    page = signed_in(alice).get("/audit/?action=service&team=core").content.decode()
    deleted = AuditEntry.objects.get(action="service.delete")
    assert f'data-entry="{deleted.id}"' in page
    row = page[page.index(f'data-entry="{deleted.id}"') :]
    row = row[: row.index("</tr>")]
    assert "gone" in row and "core" in row and "<a href" not in row  # no page to link to


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("since=yesterday", "since:"),
        ("until=2026-12-01T25:00", "until:"),
        ("since=2026-12-02T00:00&until=2026-12-01T00:00", "until: is before since"),
        ("team=No+Such+Team", "team:"),
        ("who=" + "x" * 201, "who:"),
    ],
)
def test_a_bad_filter_is_said_on_the_page_and_nothing_listed(log, alice, query, said):
    answer = signed_in(alice).get("/audit/?" + query)
    assert answer.status_code == 200
    page = answer.content.decode()
    assert 'id="filter-errors"' in page and said in page
    assert "cannot be used" in page
    assert shown(answer) == []


def test_a_moment_utc_cannot_hold_lists_what_the_calendars_edge_does(log, alice, admin_user):
    """9999-12-31T23:59:59-23:59 is past the calendar's end in UTC, and PostgreSQL refuses its
    offset: the page and the security tab answered 500 (issue 26's breaking trial)."""
    far = "9999-12-31T23%3A59%3A59-23%3A59"
    assert shown(signed_in(alice).get(f"/audit/?since={far}")) == []
    assert len(shown(signed_in(alice).get(f"/audit/?until={far}"))) == len(
        shown(signed_in(alice).get("/audit/"))
    )
    answer = signed_in(admin_user).get(f"/audit/security/?since={far}")
    assert answer.status_code == 200 and 'id="filter-errors"' not in answer.content.decode()


def row_of(page: str, entry_id: int) -> str:
    start = page.index(f'data-entry="{entry_id}"')
    return page[start : page.index("</tr>", start)]


def test_objects_link_where_they_live(log, alice, admin_user):
    from portal.models import ApiToken
    from services.models import Team

    ApiToken.objects.create(name="deploy", prefix="x", secret_hash="h" * 64)
    page = signed_in(alice).get("/audit/").content.decode()
    assert 'href="/services/svc/"' in row_of(page, log[0])
    assert 'href="/services/svc/#checks"' in row_of(page, log[2])
    assert 'href="/services/svc/#configuration"' in row_of(page, log[5])
    edge = Team.objects.get(name="edge").pk
    assert f'href="/admin/services/team/{edge}/change/"' in row_of(page, log[4])
    assert "<a href" not in row_of(page, log[3])  # a token's admin page is an admin's
    token = ApiToken.objects.get(name="deploy").pk
    page = signed_in(admin_user).get("/audit/").content.decode()
    assert f'href="/admin/portal/apitoken/{token}/change/"' in row_of(page, log[3])


def test_it_pages_fifty_at_a_time_newest_first(log, alice):
    for n in range(60):
        audit.record("user:carol", "service.update", "service", "svc", {"i": n})
    client = signed_in(alice)
    first = client.get("/audit/?who=carol")
    assert len(shown(first)) == 50
    page = first.content.decode()
    assert "60</span> entries (1\u201350 shown)" in page
    older = re.search(r'href="(\?[^"]*page=2[^"]*)"', page).group(1).replace("&amp;", "&")
    assert "who=carol" in older
    second = client.get("/audit/" + older)
    assert len(shown(second)) == 10
    assert set(shown(first)).isdisjoint(shown(second))
    past = client.get("/audit/?who=carol&page=9").content.decode()
    assert "not a page between 1 and 2" in past


def test_the_export_link_carries_the_filters(log, alice):
    page = signed_in(alice).get("/audit/?team=edge&who=bob").content.decode()
    link = re.search(r'href="(/api/audit\?[^"]*)" download', page).group(1).replace("&amp;", "&")
    answer = signed_in(alice).get(link)
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    lines = b"".join(answer.streaming_content).decode().splitlines()
    assert len(lines) == 2 and "user:bob" in lines[1] and ",cache," in lines[1]


def test_text_from_the_log_is_escaped(log, alice):
    audit.record("<script>alert(1)</script>", "service.update", "service", "svc", {"x": "<b>"})
    page = signed_in(alice).get("/audit/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_security_tab_is_the_admins(log, alice, admin_user):
    security.record(security.Kind.LOGIN_FAILED, "mallory", "POST /accounts/login/", "refused")
    operator = signed_in(alice)
    assert "Security events" not in operator.get("/audit/").content.decode()
    assert operator.get("/audit/security/").status_code == 403
    admin = signed_in(admin_user)
    assert 'href="/audit/security/"' in admin.get("/audit/").content.decode()
    page = admin.get("/audit/security/?kind=login_failed").content.decode()
    assert "mallory" in page and 'aria-current="page">Security events' in page
    assert "mallory" not in admin.get("/audit/security/?kind=token_invalid").content.decode()
    bad = admin.get("/audit/security/?since=soon")
    assert bad.status_code == 200 and "since:" in bad.content.decode()
    assert 'data-event="' not in bad.content.decode()

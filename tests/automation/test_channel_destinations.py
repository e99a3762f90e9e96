"""A channel is judged by the address its notifier really connects to: an e-mail channel by
the SMTP server it sends through (``smtp=``), not by the URL's host -- a stranger's trial
saw an allowed host with ``smtp=`` a denied address, and that address got every mail. Real
SMTP listeners on an allowed and a denied address (127.0.0.2, denied by
HEALTH_DENIED_NETWORKS) count the connections each gets, through the API, the admin's one
write path and the automation task that sends. Only the schemes of automation.schemes are
accepted, without the parameters that reach past the policy (a template fetched or read,
PGP key files)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automation import schemes, tasks
from automation.models import Alert, Delivery, DeliveryAttempt, NotificationChannel
from portal import encryption
from tests.automation.conftest import process
from tests.automation.listeners import listening_pair

pytestmark = [pytest.mark.django_db(transaction=True)]

ALLOWED, DENIED = "127.0.0.1", "127.0.0.2"
MAIL = "mailto://ops:pw@{host}:{port}/?from=alerts@example.com&to=oncall@example.com"


@pytest.fixture
def listeners(settings):
    settings.HEALTH_DENIED_NETWORKS = [f"{DENIED}/32"]
    allowed, denied = listening_pair(ALLOWED, DENIED)
    yield allowed, denied
    allowed.stop()
    denied.stop()


def put(automation, url: str, name: str = "mail"):
    return automation.call("put", f"/api/notification-channels/{name}", {"url": url})


def stored_as_before(name: str, url: str) -> NotificationChannel:
    """A channel row as an older portal validated it (or not at all)."""
    return NotificationChannel.objects.create(
        name=name, url=encryption.encrypt(url), url_shown="-", events=["down"]
    )


def send_to(alert: Alert, channel: NotificationChannel) -> DeliveryAttempt:
    """One delivery of the alert to the channel, sent by the automation's task."""
    Delivery.objects.create(alert=alert, channel=channel, channel_name=channel.name, event="down")
    tasks.send_due_deliveries()
    return DeliveryAttempt.objects.filter(delivery__channel=channel).get()


@pytest.fixture
def down_alert(db_estate):
    db_estate.down("db")
    process()
    Delivery.objects.all().delete()  # the channels of each test get their own
    return Alert.objects.get(resolved_at=None)


def test_an_email_channel_is_judged_by_the_smtp_server_it_connects_to(listeners, automation):
    _, denied = listeners
    answer = put(automation, MAIL.format(host=ALLOWED, port=denied.port) + f"&smtp={DENIED}")
    assert answer.status_code == 422, answer.json()
    reason = answer.json()["error"]["fields"]["url"]
    assert f"the SMTP server {DENIED}:{denied.port}" in reason
    assert "HEALTH_DENIED_NETWORKS" in reason
    assert not NotificationChannel.objects.exists() and denied.connections == 0


def test_the_admin_judges_an_email_channel_by_its_smtp_server(listeners, admin_user, client):
    _, denied = listeners
    client.force_login(admin_user)
    url = MAIL.format(host=ALLOWED, port=denied.port) + f"&smtp={DENIED}"
    answer = client.post(
        "/admin/automation/notificationchannel/add/",
        {"name": "mail", "url": url, "teams": "", "events": ["down"]},
    )
    assert answer.status_code == 200  # the form again, with the reason on the URL
    assert f"the SMTP server {DENIED}:{denied.port}" in answer.content.decode()
    assert not NotificationChannel.objects.exists() and denied.connections == 0


def test_an_email_channel_stored_before_never_reaches_a_denied_smtp_server(listeners, down_alert):
    _, denied = listeners
    url = MAIL.format(host=ALLOWED, port=denied.port) + f"&SMTP={DENIED}"
    attempt = send_to(down_alert, stored_as_before("mail", url))
    assert not attempt.ok
    assert f"refused by the network policy: the SMTP server {DENIED}" in attempt.error
    assert denied.connections == 0


def test_an_email_channel_sends_through_its_allowed_smtp_server(listeners, automation, down_alert):
    """The other way round: a denied host in the URL, an allowed SMTP server -- accepted, and
    the mail arrives where apprise really connects."""
    allowed, denied = listeners
    url = MAIL.format(host=DENIED, port=allowed.port) + f"&smtp={ALLOWED}"
    assert put(automation, url).status_code == 201
    attempt = send_to(down_alert, NotificationChannel.objects.get(name="mail"))
    assert attempt.ok, attempt.error
    assert len(allowed.messages) == 1 and "[DOWN] db" in allowed.messages[0]
    assert denied.connections == 0


# One URL per accepted scheme whose notifier connects where its URL says: {host}, {port}, and
# for e-mail the SMTP server (smtp=, any case) that moves the connection.
SELF_HOSTED = {
    "json": "{s}://{host}:{port}/hook",
    "xml": "{s}://{host}:{port}/hook",
    "form": "{s}://{host}:{port}/hook",
    "ntfy": "{s}://{host}:{port}/alerts",
    "gotify": "{s}://{host}:{port}/Abcdefghijklmno",
    "mmost": "{s}://{host}:{port}/abcdefghijklmnopqrstuvwxyz",
    "rocket": "{s}://user:pass@{host}:{port}/#ops",
    "workflow": "{s}://{host}:{port}/0123456789abcdef0123456789abcdef/" + "s1gnature" * 5,
    "mailto": "{s}://ops:pw@{host}:{port}/?from=alerts@example.com&to=oncall@example.com",
}
SMTP_SPELLINGS = [ALLOWED, DENIED, f"::ffff:{ALLOWED}", f"::ffff:{DENIED}"]


@st.composite
def channel_urls(draw) -> tuple[str, str]:
    """(a URL, the address its notifier connects to)."""
    kind = draw(st.sampled_from(sorted(SELF_HOSTED)))
    scheme = draw(st.sampled_from(next(s for s in schemes.SCHEMES if kind in s.schemes).schemes))
    host = draw(st.sampled_from([ALLOWED, DENIED]))
    url = SELF_HOSTED[kind].format(s=scheme, host=host, port="{port}")
    smtp = draw(st.sampled_from([None, *SMTP_SPELLINGS])) if kind == "mailto" else None
    if smtp:
        url += f"&{draw(st.sampled_from(['smtp', 'SMTP', 'Smtp']))}={smtp}"
    return url, (smtp or host).removeprefix("::ffff:")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=channel_urls())
def test_no_accepted_channel_connects_to_a_denied_address(listeners, automation, down_alert, case):
    """Over every scheme whose URL names where it connects, plain and secure, with and
    without smtp=: saved only when the address really connected to is allowed; sent (also
    from a row stored unjudged) never to the denied listener, and to the allowed one when
    that is where it connects."""
    allowed, denied = listeners
    template, connects_to = case
    url = template.format(port=allowed.port)
    try:
        answer = put(automation, url, name="ch")
        assert answer.status_code == (201 if connects_to == ALLOWED else 422), answer.json()
        if connects_to == DENIED:
            assert "HEALTH_DENIED_NETWORKS" in answer.json()["error"]["fields"]["url"]
        send_to(down_alert, stored_as_before("unjudged", url))
        assert denied.connections == 0
        assert (allowed.connections > 0) == (connects_to == ALLOWED)
    finally:
        NotificationChannel.objects.all().delete()
        Delivery.objects.all().delete()
        allowed.reset()
        denied.reset()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("syslog://", "Syslog channels are not accepted; a channel may use json://"),
        ("rsyslog://127.0.0.1", "Remote Syslog channels are not accepted"),
        ("apprise://127.0.0.1/token", "channels are not accepted"),
        ("matrix://user:pass@127.0.0.1/#room", "channels are not accepted"),
        ("irc://127.0.0.1/#ops", "IRC channels are not accepted"),
        (
            "https://discord.com/api/webhooks/1234567890/abcdefghijklmnop?template=/etc/hosts",
            "template= is not accepted in Discord channels: a template is a file",
        ),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/?Template=/etc/hosts", "template="),
        ("tgram://123456789:AAHabcdefghijklmnopqrstuvwxyz012345/987654321?template=x", "template="),
        (MAIL.format(host=ALLOWED, port=25) + "&pgppub=/etc/hosts", "pgppub= is not accepted"),
        (MAIL.format(host=ALLOWED, port=25) + "&PGPPRV=/etc/hosts", "pgpprv= is not accepted"),
        (MAIL.format(host=ALLOWED, port=25) + "&wkd=yes", "wkd= is not accepted"),
        (MAIL.format(host=ALLOWED, port=25) + "&smtp=127.0.0.1:25", "not a valid host name"),
    ],
)
def test_a_scheme_or_parameter_that_reaches_past_the_policy_is_refused(automation, url, reason):
    answer = put(automation, url)
    assert answer.status_code == 422, answer.json()
    assert reason in answer.json()["error"]["fields"]["url"]
    assert not NotificationChannel.objects.exists()


def test_a_stored_template_parameter_fetches_nothing(listeners, down_alert):
    """A workflow to the allowed listener with its template on the denied one: before, the
    template was fetched from the denied address when the channel sent."""
    allowed, denied = listeners
    url = SELF_HOSTED["workflow"].format(s="workflows", host=ALLOWED, port=allowed.port)
    attempt = send_to(
        down_alert,
        stored_as_before("flow", f"{url}?template=http://{DENIED}:{denied.port}/card.json"),
    )
    assert "template= is not accepted" in attempt.error
    assert denied.connections == 0 and allowed.connections == 0


COMMON = {"cto", "emojis", "format", "optional", "overflow", "redirect", "retry", "rto"}
COMMON |= {"store", "tz", "verify", "wait"}
# Each accepted scheme's parameters as apprise 2.3 declares them, every one read for where it
# makes the notifier connect or what it makes it read (automation/schemes.py): apart from
# the ones that scheme refuses, they change the message, the path, the method, a header, or
# the host and port the destination is judged by -- `mode` of ntfy (ntfy.sh), `smtp` and
# `mode` of e-mail (the SMTP server and its default port). `redirect` is forced off at send.
READ = {
    "json": {"headers", "host", "method", "params", "password", "path", "payload", "port"},
    "form": {"attach-as", "headers", "host", "method", "params", "password", "path", "payload"},
    "ntfy": {"actions", "attach", "auth", "avatar_url", "click", "delay", "email", "filename"}
    | {"host", "image", "mode", "password", "port", "priority", "targets", "to", "token"}
    | {"topic", "user", "xtags"},
    "gotify": {"host", "path", "port", "priority", "token"},
    "mmost": {"botname", "channel", "channels", "fullpath", "host", "icon_url", "image", "mode"}
    | {"port", "target_channel", "target_channel_id", "targets", "team", "to", "token", "user"},
    "rocket": {"avatar", "host", "mode", "password", "port", "target_channel", "target_room"}
    | {"target_user", "targets", "to", "token", "user", "webhook"},
    "workflow": {"api-version", "host", "id", "image", "pa", "port", "powerautomate", "route"}
    | {"routeid", "sig", "signature", "template", "tokens", "ver", "workflow", "wrap"},
    "mailto": {"bcc", "cc", "from", "headers", "host", "inline", "mode", "name", "password"}
    | {"pgp", "pgpprv", "pgppub", "port", "reply", "smtp", "target_email", "targets", "to"}
    | {"user", "wkd"},
    "slack": {"access_token", "blocks", "botname", "footer", "image", "mode", "target_channels"}
    | {"target_email", "target_encoded_id", "target_user", "targets", "template", "timestamp"}
    | {"to", "token", "token_a", "token_b", "token_c", "tokens", "workflow_path"},
    "discord": {"avatar", "avatar_url", "batch", "botname", "fields", "flags", "footer"}
    | {"footer_logo", "href", "image", "ping", "template", "thread", "tokens", "tts", "url"}
    | {"webhook_id", "webhook_token"},
    "pagerduty": {"action", "apikey", "class", "click", "component", "dedup", "details"}
    | {"group", "image", "integrationkey", "region", "severity", "source"},
    "opsgenie": {"action", "alias", "apikey", "batch", "details", "entity", "mapping"}
    | {"priority", "region", "tags", "target_escalation", "target_schedule", "target_team"}
    | {"target_user", "targets", "to", "user"},
    "tgram": {"album", "bot_token", "content", "detect", "image", "mdv", "preview", "silent"}
    | {"target_user", "targets", "template", "thread", "to", "tokens", "topic"},
    "pover": {"e2ee", "expire", "interval", "key", "priority", "sound", "target_device"}
    | {"target_group", "targets", "to", "token", "url", "url_title", "user_key"},
    "gchat": {"key", "thread", "thread_key", "token", "webhook_key", "webhook_token"}
    | {"workspace"},
}
READ["json"] |= {"user"}
READ["xml"] = READ["json"]
READ["form"] |= {"port", "user"}


def test_every_parameter_of_an_accepted_scheme_was_read():
    """An apprise upgrade that gives an accepted scheme a new parameter fails here until
    someone reads where it makes the notifier connect (and refuses it, or adds it above)."""
    from apprise.manager_plugins import NotificationManager

    plugins = NotificationManager()
    plugins.load_modules()
    for scheme in schemes.SCHEMES:
        cls = plugins[scheme.schemes[0]]
        assert schemes.protocols(cls) >= set(scheme.schemes), scheme.name
        declared = {*cls.template_tokens, *cls.template_args, *cls.template_kwargs} - COMMON
        assert declared == READ[scheme.schemes[0]], (
            scheme.name,
            declared ^ READ[scheme.schemes[0]],
        )
        assert set(scheme.refused) <= declared, scheme.name

"""Issue 20's egress guard on the real delivery path, tried as an attacker and a failing
network would (the breaking trial): a name answering a denied address beside an allowed one,
a name that rebinds between the several requests of one send, a vendor's host answering
the metadata address, deliveries of different channels sent at once in the automation's
threads, a port of 0, a webhook to an internationalised name, and the spellings of the
metadata address a URL can hide it in. Real listeners on 127.0.0.1 (allowed) and 127.0.0.2
(denied by HEALTH_DENIED_NETWORKS) count connections; DNS is stood in for at the OS
boundary only -- the resolver the guard wraps, as tests/portal/test_egress.py does."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from automation.models import Delivery, DeliveryAttempt, NotificationChannel
from portal import egress
from tests.automation.conftest import process, send_later
from tests.automation.listeners import listening_pair
from tests.automation.test_channel_destinations import (  # noqa: F401
    MAIL,
    down_alert,
    send_to,
    stored_as_before,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

ALLOWED, DENIED = "127.0.0.1", "127.0.0.2"
SLACK_TOKENS = ("T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7")
SLACK = "slack://{}/{}/{}/#general".format(*SLACK_TOKENS)


class Resolver:
    """The DNS the tests own: each name answers its list of addresses; a name given several
    answers moves to the next on each lookup (TTL 0: a rebinding server), the last kept.
    Everything else is asked of the real resolver."""

    def __init__(self, answers: dict[str, list]):
        self.answers = answers
        self.asked: list[str] = []
        self._real = egress._RESOLVE
        self._lock = threading.Lock()

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self._real(host, port, family, type, proto, flags)
        with self._lock:
            self.asked.append(name)
            queue = self.answers[name]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [_info(address, int(port)) for address in addresses]


def _info(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
def dns(monkeypatch):
    def install(answers: dict[str, list]) -> Resolver:
        resolver = Resolver(answers)
        monkeypatch.setattr(egress, "_RESOLVE", resolver)
        return resolver

    return install


@pytest.fixture
def listeners(settings):
    settings.HEALTH_DENIED_NETWORKS = [f"{DENIED}/32"]
    allowed, denied = listening_pair(ALLOWED, DENIED)
    yield allowed, denied
    allowed.stop()
    denied.stop()


# --- Promise 1: judged after resolution, connected to what was judged ------------------------


def test_a_name_answering_a_denied_address_first_reaches_only_the_allowed_one(
    listeners,
    dns,
    down_alert,  # noqa: F811
):
    """The SMTP server's name answers the denied address first and the allowed one second:
    the mail goes to the allowed listener, the denied one sees no connection."""
    allowed, denied = listeners
    resolver = dns({"twofaced.test": [[DENIED, ALLOWED]]})
    url = MAIL.format(host="twofaced.test", port=allowed.port)
    attempt = send_to(down_alert, stored_as_before("mail", url))
    assert attempt.ok, attempt.error
    assert len(allowed.messages) == 1 and denied.connections == 0
    assert resolver.asked == ["twofaced.test"]


class RocketChat:
    """A Rocket.Chat API on one address and port (login, post, logout), recording paths."""

    def __init__(self, host: str, port: int):
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.paths.append(self.path)
                body = {"success": True}
                if self.path.endswith("/login"):
                    body = {"status": "success", "data": {"authToken": "t0k", "userId": "u1"}}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def rocket_pair(settings):
    settings.HEALTH_DENIED_NETWORKS = [f"{DENIED}/32"]
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((DENIED, 0))
            port = probe.getsockname()[1]
        try:
            good = RocketChat(ALLOWED, port)
        except OSError:
            continue
        try:
            bad = RocketChat(DENIED, port)
        except OSError:
            good.stop()
            continue
        yield good, bad
        good.stop()
        bad.stop()
        return
    raise RuntimeError("no port free on both addresses")


def test_a_notifier_that_connects_several_times_gets_the_judged_answer_each_time(
    rocket_pair,
    dns,
    down_alert,  # noqa: F811
):
    """Rocket.Chat's notifier logs in, posts and logs out: three connections, three lookups
    by the client. The name rebinds after its first answer (allowed, then denied): every
    request goes to the address judged, the resolver is asked once, the denied server hears
    nothing."""
    good, bad = rocket_pair
    port = good.server.server_address[1]
    resolver = dns({"chat.rebind.test": [[ALLOWED], [DENIED]]})
    url = f"rocket://ops:pw@chat.rebind.test:{port}/#alerts"
    attempt = send_to(down_alert, stored_as_before("chat", url))
    assert attempt.ok, attempt.error
    assert good.paths == ["/api/v1/login", "/api/v1/chat.postMessage", "/api/v1/logout"]
    assert bad.paths == []
    assert resolver.asked == ["chat.rebind.test"]


# --- Promise 3: a vendor's hosts pass the settings, never the always-refused -----------------


@pytest.mark.parametrize("metadata", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1"])
def test_a_vendor_host_answering_the_metadata_address_is_refused_and_named(
    dns,
    down_alert,  # noqa: F811
    metadata,
):
    """hooks.slack.com answering the metadata address (a poisoned resolver, a hostile
    network): refused, whatever the settings trust, and the attempt says where and why --
    without the webhook's tokens."""
    dns({"hooks.slack.com": [[metadata]]})
    attempt = send_to(down_alert, stored_as_before("slack", SLACK))
    assert not attempt.ok
    assert "refused by the network policy: hooks.slack.com resolves only to refused" in (
        attempt.error
    )
    assert "always refused" in attempt.error
    delivery = Delivery.objects.get(channel__name="slack")
    for token in SLACK_TOKENS[1:]:
        assert token not in attempt.error and token not in delivery.detail


def test_a_vendor_host_is_not_judged_by_the_denied_networks(dns, down_alert, settings):  # noqa: F811
    """The same host answering an address HEALTH_DENIED_NETWORKS denies (and a port the
    allowed ports leave out): the vendor is trusted past the settings, so the notifier
    tries it (nothing listens there in the tests) and the attempt names where."""
    settings.HEALTH_DENIED_NETWORKS = ["127.0.0.0/8"]
    settings.HEALTH_ALLOWED_PORTS = ["8080"]
    dns({"hooks.slack.com": [["127.0.0.3"]]})
    attempt = send_to(down_alert, stored_as_before("slack", SLACK))
    assert not attempt.ok
    assert "refused by the network policy" not in attempt.error
    assert attempt.error.endswith("(tried hooks.slack.com:443)"), attempt.error


# --- Promise 6: each delivery thread its own guard --------------------------------------------


@pytest.mark.postgresql  # the embedded mode sends one at a time
def test_deliveries_sent_at_once_each_keep_their_own_guard(listeners, dns, db_estate, settings):
    """Channels to the denied listener (stored unjudged), channels to the allowed one, and
    a vendor channel whose host answers the denied address -- all sent at once by the
    automation's threads. No thread's guard leaks into another's: the vendor's trust does
    not let a neighbour reach the denied address, and every allowed channel is sent."""
    allowed, denied = listeners
    settings.AUTOMATION_SEND_CONCURRENCY = 8
    dns({"hooks.slack.com": [[DENIED]]})
    for n in range(3):
        stored_as_before(f"denied-{n}", f"json://{DENIED}:{denied.port}/hook")
        stored_as_before(f"allowed-{n}", f"json://{ALLOWED}:{allowed.port}/hook")
    stored_as_before("slack", SLACK)
    NotificationChannel.objects.update(events=["down"])
    db_estate.down("db")
    process()
    send_later()
    attempts = {a.delivery.channel_name: a for a in DeliveryAttempt.objects.all()}
    assert len(attempts) == 7
    assert denied.connections == 0  # the vendor's trusted host was on 127.0.0.2:443
    assert allowed.connections == 3  # an SMTP listener: the JSON notifiers fail after it
    for n in range(3):
        assert "refused by the network policy" in attempts[f"denied-{n}"].error
        assert "refused by the network policy" not in attempts[f"allowed-{n}"].error
    assert "(tried hooks.slack.com:443)" in attempts["slack"].error


# --- Promise 2: where the scheme says, and a port of 0 ---------------------------------------


def test_a_port_of_zero_is_refused_when_saved(automation):
    """json://host:0 makes apprise connect to port 0, while the scheme declared port 80:
    saved, every send was refused by the guard ("host:0 is not where this connects
    (host:80)"). The port is refused when the channel is saved, as a check's is."""
    for url in ("json://127.0.0.1:0/hook", "ntfys://127.0.0.1:0/alerts", "xml://localhost:0/x"):
        answer = automation.call("put", "/api/notification-channels/zero", {"url": url})
        assert answer.status_code == 422, (url, answer.json())
        assert "the port must be from 1 to 65535" in answer.json()["error"]["fields"]["url"]
    assert not NotificationChannel.objects.exists()


def test_a_port_of_zero_stored_before_connects_nowhere_and_says_why(down_alert):  # noqa: F811
    attempt = send_to(down_alert, stored_as_before("zero", "json://127.0.0.1:0/hook"))
    assert not attempt.ok
    assert "127.0.0.1:0: the port must be from 1 to 65535" in attempt.error


# --- Webhooks: an internationalised host name -------------------------------------------------


def test_a_webhook_to_an_internationalised_name_reaches_it(db_estate, webhook, automation, dns):
    """The rule's URL names bücher.test: the guard's place is its ASCII form
    (xn--bcher-kva.test, as the URL library writes it) while urllib looks the name up as
    written -- before, the guard took them for two places and refused every call."""
    from tests.automation.test_rule_promises import put_rule

    dns({"bücher.test": [[ALLOWED]], "xn--bcher-kva.test": [[ALLOWED]]})
    url = f"http://bücher.test:{webhook.server.port}/restart"
    rule = {
        "trigger": "down",
        "scope": {"services": ["db"]},
        "actions": [{"type": "webhook", "url": url}],
    }
    put_rule(automation, "restart", rule)
    db_estate.down("db")
    process()
    send_later()
    attempt = Delivery.objects.get(rule__name="restart").attempt_rows.get()
    assert attempt.ok, attempt.error
    assert len(webhook.calls) == 1


# --- The metadata address, however a URL spells it --------------------------------------------

METADATA_CHANNELS = [
    "json://good.example@169.254.169.254/hook",  # userinfo before the real host
    "json://2852039166/hook",  # 169.254.169.254 as one decimal number
    "json://0251.0376.0251.0376/hook",  # ... in octal
    "json://0xa9.0xfe.0xa9.0xfe/hook",  # ... in hex
    "json://[::ffff:169.254.169.254]/hook",  # IPv4-mapped IPv6
    "json://[::ffff:a9fe:a9fe]/hook",  # ... in hex
    "json://169.254.169.254./hook",  # a trailing dot
    "jsons://[fe80::1%25lo]/hook",  # link-local with a zone
    MAIL.format(host="mail.example", port=25) + "&smtp=2852039166",
    MAIL.format(host="mail.example", port=25) + "&smtp=::ffff:a9fe:a9fe",
]


@pytest.mark.parametrize("url", METADATA_CHANNELS)
def test_a_channel_to_the_metadata_address_however_spelled_is_refused(automation, url):
    answer = automation.call("put", "/api/notification-channels/meta", {"url": url})
    assert answer.status_code == 422, answer.json()
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize("url", METADATA_CHANNELS)
def test_a_channel_to_the_metadata_address_stored_before_is_refused_at_send(down_alert, url):  # noqa: F811
    attempt = send_to(down_alert, stored_as_before("meta", url))
    assert not attempt.ok
    said = ("always refused", "not a canonical address", "apprise no longer understands")
    assert any(reason in attempt.error for reason in said), attempt.error


@pytest.mark.parametrize(
    "url",
    [
        "http://good.example@169.254.169.254/latest/",
        "http://2852039166/latest/",
        "http://0251.0376.0251.0376/latest/",
        "http://[::ffff:a9fe:a9fe]/latest/",
        "http://169.254.169.254./latest/",
        "http://169.254.169.254:0/latest/",
    ],
)
def test_a_webhook_to_the_metadata_address_however_spelled_is_refused(automation, url):
    rule = {"trigger": "down", "actions": [{"type": "webhook", "url": url}]}
    answer = automation.call("put", "/api/automation/rules/meta", rule)
    assert answer.status_code == 422, answer.json()


# --- Parameters that move the connection ------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "reaches_allowed"),
    [
        # apprise reads no host= for these: the URL's host stays where it connects.
        ("json://{allowed}:{port}/hook?host={denied}", True),
        ("form://{allowed}:{port}/hook?host={denied}&to={denied}", True),
        # port= moves the connection, and the declared place moves with it.
        ("json://{allowed}:1/hook?port={port}", True),
        # smtp= moves e-mail to the denied server: refused there, whatever the URL's host.
        (MAIL.replace("{host}", "{allowed}") + "&smtp={denied}", False),
        # ntfy's mode=cloud sends to ntfy.sh (the vendor), never to the URL's host.
        ("ntfy://{denied}:{port}/alerts?mode=cloud", False),
    ],
)
def test_a_parameter_moves_the_connection_only_where_the_scheme_declares(
    listeners,
    down_alert,  # noqa: F811
    dns,
    template,
    reaches_allowed,
):
    allowed, denied = listeners
    dns({"ntfy.sh": [["127.0.0.3"]]})  # nothing listens there
    url = template.format(allowed=ALLOWED, denied=DENIED, port=allowed.port)
    send_to(down_alert, stored_as_before("moved", url))
    assert denied.connections == 0
    assert (allowed.connections > 0) == reaches_allowed

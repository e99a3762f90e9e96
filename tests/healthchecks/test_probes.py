"""Probes against real local servers: pytest-httpserver, the servers of ``servers.py``, and
the PostgreSQL and Redis the suite runs on. Nothing is mocked."""

import asyncio
import json
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
import time_machine
import uvloop
from werkzeug import Request, Response

from healthchecks.probes import (
    ProbeOutcome,
    Prober,
    ProbeSpec,
    make_spec,
    probe,
    validate_callable_path,
)
from healthchecks.status import ErrorCode, Status
from portal.egress import NetworkPolicy
from tests.healthchecks import servers
from tests.healthchecks.servers import ScriptedServer

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/13"
SECRET = "Bearer s3cr3t-t0ken-never-shown"


def spec(kind: str, target: str, **options) -> ProbeSpec:
    options.setdefault("timeout", 3.0)
    return make_spec(1, kind, target, **options)


def run(probe_spec: ProbeSpec, **prober_options) -> ProbeOutcome:
    """One probe on a fresh event loop, with the policy of the settings."""
    policy = NetworkPolicy.from_settings()

    async def go() -> ProbeOutcome:
        if prober_options:
            async with Prober(policy, **prober_options) as prober:
                return await prober.probe(probe_spec)
        return await probe(probe_spec, policy)

    return asyncio.run(go())


def assert_healthy(outcome: ProbeOutcome) -> None:
    assert outcome.status == Status.HEALTHY, outcome
    assert outcome.error_code == ErrorCode.NONE
    assert outcome.errors == []
    assert outcome.response_ms > 0


def assert_failed(
    outcome: ProbeOutcome, code: ErrorCode, *says: str, status: Status = Status.UNHEALTHY
) -> None:
    """Failed with ``code``, and the errors say each of ``says``."""
    assert outcome.status == status, outcome
    assert outcome.error_code == code, outcome
    text = " | ".join(outcome.errors)
    for fragment in says:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert outcome.response_ms > 0


def health_json(document: dict) -> dict:
    return {"response_data": json.dumps(document), "content_type": "application/health+json"}


# --- HTTP: status, method, headers ------------------------------------------------------------


def test_http_200_is_healthy_with_metrics(httpserver):
    httpserver.expect_request("/health").respond_with_data("ok")
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_healthy(outcome)
    assert outcome.metrics == {"http_status": 200, "redirects": 0, "body_bytes": 2}
    assert outcome.warnings == []


def test_http_500_is_unhealthy_and_says_the_status(httpserver):
    httpserver.expect_request("/health").respond_with_data("boom", status=500)
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_failed(outcome, ErrorCode.HTTP_STATUS, "HTTP 500 (expected 2xx/3xx)")
    assert outcome.metrics["http_status"] == 500


def test_expected_status_list_decides(httpserver):
    httpserver.expect_request("/gone").respond_with_data("", status=410)
    httpserver.expect_request("/ok").respond_with_data("ok")
    assert_healthy(run(spec("http", httpserver.url_for("/gone"), expected_status=(404, 410))))
    outcome = run(spec("http", httpserver.url_for("/ok"), expected_status=(204,)))
    assert_failed(outcome, ErrorCode.HTTP_STATUS, "HTTP 200 (expected 204)")


def test_head_sends_head_and_reads_no_body(httpserver):
    httpserver.expect_request("/health", method="HEAD").respond_with_data("")
    outcome = run(spec("http", httpserver.url_for("/health"), method="HEAD"))
    assert_healthy(outcome)
    assert outcome.metrics["body_bytes"] == 0
    assert [request.method for request, _ in httpserver.log] == ["HEAD"]


def test_unsupported_method_is_refused():
    outcome = run(spec("http", "http://127.0.0.1:1/", method="POST"))
    assert_failed(outcome, ErrorCode.BLOCKED, "method 'POST' is not supported")


def test_headers_are_sent_and_never_appear_in_the_outcome(httpserver):
    def echo(request: Request) -> Response:
        # A careless target echoing the credentials back in its failure output.
        said = request.headers.get("Authorization", "")
        document = {"status": "fail", "output": f"rejected {said}", "notes": [said]}
        return Response(json.dumps(document), status=503, content_type="application/json")

    httpserver.expect_request("/health").respond_with_handler(echo)
    headers = {"Authorization": SECRET, "X-Probe-Token": "tok-0123456789"}
    outcome = run(spec("http", httpserver.url_for("/health"), headers=headers))

    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == SECRET
    assert request.headers["X-Probe-Token"] == "tok-0123456789"
    assert request.headers["User-Agent"].startswith("service-portal-healthcheck")
    assert_failed(outcome, ErrorCode.HTTP_STATUS, "HTTP 503", "[redacted]")
    shown = repr(outcome)
    assert "s3cr3t" not in shown
    assert "tok-0123456789" not in shown


# --- HTTP: bodies and health documents --------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status", "code"),
    [
        ("pass", Status.HEALTHY, ErrorCode.NONE),
        ("UP", Status.HEALTHY, ErrorCode.NONE),
        ("warn", Status.DEGRADED, ErrorCode.REPORTED),
        ("degraded", Status.DEGRADED, ErrorCode.REPORTED),
        ("fail", Status.UNHEALTHY, ErrorCode.REPORTED),
        ("Down", Status.UNHEALTHY, ErrorCode.REPORTED),
    ],
)
def test_health_document_status_words(httpserver, word, status, code):
    document = {"status": word, "output": "replica lag 12s"}
    httpserver.expect_request("/health").respond_with_data(**health_json(document))
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert outcome.status == status
    assert outcome.error_code == code
    assert outcome.details["status"] == word
    if status != Status.HEALTHY:
        assert outcome.errors == [f"health document reports {word!r}: replica lag 12s"]


def test_unknown_health_document_status_is_a_bad_body(httpserver):
    httpserver.expect_request("/health").respond_with_data(**health_json({"status": "sideways"}))
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_failed(outcome, ErrorCode.BAD_BODY, "health document status 'sideways' is unknown")


def test_sub_checks_go_into_details_and_failures_into_messages(httpserver):
    document = {
        "status": "fail",
        "checks": {
            "db:responseTime": [
                {"componentId": "pg-1", "status": "pass", "observedValue": 12, "observedUnit": "ms"}
            ],
            "disk:utilization": [{"status": "fail", "output": "disk /data is full", "x": 1}],
            "cache:hitRatio": [{"status": "warn", "observedValue": 0.4}],
        },
    }
    httpserver.expect_request("/health").respond_with_data(**health_json(document))
    outcome = run(spec("http", httpserver.url_for("/health")))

    assert_failed(outcome, ErrorCode.REPORTED, "health document reports 'fail'")
    checks = outcome.details["checks"]
    assert checks["db:responseTime"] == [
        {"componentId": "pg-1", "status": "pass", "observedValue": 12, "observedUnit": "ms"}
    ]
    assert checks["disk:utilization"] == [{"status": "fail", "output": "disk /data is full"}]
    assert "disk:utilization: fail: disk /data is full" in outcome.errors
    assert outcome.warnings == ["cache:hitRatio: warn"]


def test_failing_sub_check_of_a_passing_document_is_a_warning(httpserver):
    document = {"status": "pass", "checks": {"replica:lag": {"status": "fail", "output": "r2"}}}
    httpserver.expect_request("/health").respond_with_data(**health_json(document))
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_healthy(outcome)
    assert outcome.warnings == ["replica:lag: fail: r2"]


def test_invalid_json_is_a_bad_body(httpserver):
    httpserver.expect_request("/health").respond_with_data(
        "{not json", content_type="application/json"
    )
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_failed(outcome, ErrorCode.BAD_BODY, "body is not valid JSON")


def test_json_without_status_and_plain_text_are_just_bodies(httpserver):
    httpserver.expect_request("/json").respond_with_json({"version": "1.2"})
    httpserver.expect_request("/text").respond_with_data(
        "<html>fine</html>", content_type="text/html"
    )
    assert_healthy(run(spec("http", httpserver.url_for("/json"))))
    assert_healthy(run(spec("http", httpserver.url_for("/text"))))


def test_huge_body_is_read_only_up_to_the_cap():
    with ScriptedServer(servers.sized_body(50_000_000)) as server:
        tracemalloc.start()
        started = time.monotonic()
        outcome = run(spec("http", server.url(), max_body_bytes=65_536))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert_healthy(outcome)
    assert outcome.metrics["body_bytes"] == 65_536
    assert outcome.warnings == ["body truncated at 65536 bytes"]
    assert elapsed < 2.0
    assert peak < 8_000_000, f"peak {peak} bytes traced while reading a 50 MB body"
    assert server.bytes_sent < 50_000_000


def test_endless_body_is_cut_at_the_cap():
    with ScriptedServer(servers.endless_body) as server:
        outcome = run(spec("http", server.url(), max_body_bytes=10_000, timeout=5))
    assert_healthy(outcome)
    assert outcome.warnings == ["body truncated at 10000 bytes"]
    assert outcome.response_ms < 2000


def test_slow_drip_body_times_out():
    with ScriptedServer(servers.drip_body) as server:
        outcome = run(spec("http", server.url(), timeout=1.0))
    assert_failed(
        outcome,
        ErrorCode.TIMEOUT,
        f"timed out after 1.0s reading the body from 127.0.0.1:{server.port}",
    )
    assert 900 < outcome.response_ms < 2500


def test_server_that_never_answers_times_out():
    with ScriptedServer(servers.silent) as server:
        outcome = run(spec("http", server.url(), timeout=0.5))
    assert_failed(
        outcome, ErrorCode.TIMEOUT, f"timed out after 0.5s waiting for 127.0.0.1:{server.port}"
    )


def test_connect_timeout():
    with servers.never_accepting() as port:
        outcome = run(spec("http", f"http://127.0.0.1:{port}/", timeout=0.5))
    assert_failed(outcome, ErrorCode.TIMEOUT, "timed out after 0.5s")
    assert outcome.response_ms < 2000


def test_refused_port():
    port = servers.closed_port()
    outcome = run(spec("http", f"http://127.0.0.1:{port}/"))
    assert_failed(outcome, ErrorCode.REFUSED, f"connection refused by 127.0.0.1:{port}")


def test_name_that_does_not_resolve():
    outcome = run(spec("http", "http://does-not-exist.invalid/health"))
    assert_failed(outcome, ErrorCode.DNS, "does-not-exist.invalid does not resolve")


def test_slower_than_the_latency_threshold_is_degraded():
    with ScriptedServer(servers.answer(delay=0.3)) as server:
        outcome = run(spec("http", server.url(), latency_threshold_ms=100))
    assert_failed(outcome, ErrorCode.SLOW, "over the 100 ms threshold", status=Status.DEGRADED)


def test_latency_threshold_does_not_hide_a_worse_failure():
    with ScriptedServer(servers.answer(status=500, delay=0.2)) as server:
        outcome = run(spec("http", server.url(), latency_threshold_ms=50))
    assert_failed(outcome, ErrorCode.HTTP_STATUS, "HTTP 500")
    assert len(outcome.errors) == 1


# --- HTTP: TLS --------------------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path):
    return servers.CertificateAuthority(tmp_path)


def test_tls_verification_refuses_a_self_signed_certificate(tmp_path):
    leaf = servers.self_signed(tmp_path)
    with ScriptedServer(servers.answer(), leaf.server_context()) as server:
        outcome = run(spec("http", server.url()))
    assert_failed(outcome, ErrorCode.TLS, f"TLS certificate of 127.0.0.1:{server.port} not trusted")


def test_tls_without_verification_is_healthy_and_reports_days_left(tmp_path):
    leaf = servers.self_signed(tmp_path, days=90)
    with ScriptedServer(servers.answer(), leaf.server_context()) as server:
        outcome = run(spec("http", server.url(), verify_tls=False))
    assert_healthy(outcome)
    assert outcome.metrics["tls_days_left"] in (89, 90)
    assert outcome.warnings == []


def test_tls_verified_against_a_trusted_ca(ca):
    leaf = ca.issue("leaf")
    with ScriptedServer(servers.answer(), leaf.server_context()) as server:
        outcome = run(spec("http", server.url()), verify_context=ca.client_context())
        by_name = run(
            spec("http", f"https://localhost:{server.port}/", method="HEAD"),
            verify_context=ca.client_context(),
        )
    assert_healthy(outcome)
    assert outcome.metrics["tls_days_left"] in (89, 90)
    assert_healthy(by_name)
    assert by_name.metrics["tls_days_left"] in (89, 90)  # even with no body to read


def test_certificate_near_expiry_is_a_warning(ca):
    leaf = ca.issue("soon", days=5)
    with ScriptedServer(servers.answer(), leaf.server_context()) as server:
        outcome = run(spec("http", server.url()), verify_context=ca.client_context())
    assert_healthy(outcome)
    assert outcome.metrics["tls_days_left"] in (4, 5)
    expiry = leaf.certificate.not_valid_after_utc.date().isoformat()
    days = outcome.metrics["tls_days_left"]
    assert outcome.warnings == [f"TLS certificate expires in {days} days ({expiry})"]


def test_https_to_a_plain_http_server_is_a_tls_error():
    with ScriptedServer(servers.http_on_first_bytes) as server:
        outcome = run(spec("http", server.url(scheme="https"), verify_tls=False))
    assert_failed(outcome, ErrorCode.TLS, f"TLS handshake with 127.0.0.1:{server.port} failed")


# --- HTTP: redirects and the network policy ---------------------------------------------------


def test_redirect_is_followed(httpserver):
    httpserver.expect_request("/old").respond_with_data("", 302, {"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data("ok")
    outcome = run(spec("http", httpserver.url_for("/old")))
    assert_healthy(outcome)
    assert outcome.metrics["redirects"] == 1
    assert [request.path for request, _ in httpserver.log] == ["/old", "/new"]


def test_expected_redirect_status_is_not_followed(httpserver):
    httpserver.expect_request("/old").respond_with_data("", 301, {"Location": "/new"})
    outcome = run(spec("http", httpserver.url_for("/old"), expected_status=(301,)))
    assert_healthy(outcome)
    assert outcome.metrics == {"http_status": 301, "redirects": 0, "body_bytes": 0}


def test_redirect_with_max_redirects_zero_is_not_followed(httpserver):
    httpserver.expect_request("/old").respond_with_data("", 302, {"Location": "/new"})
    outcome = run(spec("http", httpserver.url_for("/old"), max_redirects=0))
    assert_failed(outcome, ErrorCode.HTTP_STATUS, "HTTP 302 redirect not followed")
    assert len(httpserver.log) == 1


def test_redirect_to_the_metadata_address_is_refused(httpserver):
    location = "http://169.254.169.254/latest/meta-data/?token=abc"
    httpserver.expect_request("/health").respond_with_data("", 302, {"Location": location})
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_failed(
        outcome,
        ErrorCode.BLOCKED,
        "redirect to http://169.254.169.254/latest/meta-data/ refused: "
        "169.254.169.254 is link-local/metadata: always refused",
    )
    assert "token=abc" not in repr(outcome)


def test_redirect_to_a_denied_port_is_refused_before_connecting(settings, httpserver):
    with ScriptedServer(servers.answer()) as forbidden:
        settings.HEALTH_DENIED_PORTS = [str(forbidden.port)]
        httpserver.expect_request("/health").respond_with_data(
            "", 302, {"Location": forbidden.url("/x")}
        )
        outcome = run(spec("http", httpserver.url_for("/health")))
    assert_failed(
        outcome,
        ErrorCode.BLOCKED,
        f"redirect to {forbidden.url('/x')} refused: "
        f"port {forbidden.port} is denied by HEALTH_DENIED_PORTS",
    )
    assert forbidden.requests == []


def test_redirect_to_a_name_resolving_to_a_denied_network_is_refused(settings):
    """The hop's name is checked when it is resolved, not only as written."""
    with (
        ScriptedServer(servers.answer()) as forbidden,
        ScriptedServer(
            servers.answer(status=302, headers={"Location": f"http://localhost:{forbidden.port}/"}),
            host="::1",
        ) as start,
    ):
        settings.HEALTH_DENIED_NETWORKS = ["127.0.0.0/8"]
        outcome = run(spec("http", start.url("/health")))
    assert_failed(
        outcome,
        ErrorCode.BLOCKED,
        f"redirect to http://localhost:{forbidden.port}/ refused: localhost resolves only to "
        "refused addresses: 127.0.0.1 is in 127.0.0.0/8, denied by HEALTH_DENIED_NETWORKS",
    )
    assert len(start.requests) == 1
    assert forbidden.requests == []


def test_redirect_to_another_scheme_is_refused(httpserver):
    httpserver.expect_request("/health").respond_with_data(
        "", 302, {"Location": "file:///etc/passwd"}
    )
    outcome = run(spec("http", httpserver.url_for("/health")))
    assert_failed(outcome, ErrorCode.BLOCKED, "the scheme must be http or https")


def test_too_many_redirects(httpserver):
    httpserver.expect_request("/loop").respond_with_data("", 307, {"Location": "/loop"})
    outcome = run(spec("http", httpserver.url_for("/loop"), max_redirects=3))
    assert_failed(outcome, ErrorCode.HTTP_STATUS, "too many redirects (more than 3)")
    assert len(httpserver.log) == 4


def test_headers_are_not_sent_to_another_origin(httpserver):
    other = httpserver.url_for("/landing").replace("localhost", "127.0.0.1")
    httpserver.expect_request("/health").respond_with_data("", 302, {"Location": other})
    httpserver.expect_request("/landing").respond_with_data("ok")
    outcome = run(spec("http", httpserver.url_for("/health"), headers={"Authorization": SECRET}))
    assert_healthy(outcome)
    first, second = (request for request, _ in httpserver.log)
    assert first.headers.get("Authorization") == SECRET
    assert "Authorization" not in second.headers
    assert outcome.warnings == [
        f"custom headers not sent after the redirect to http://127.0.0.1:{httpserver.port}"
    ]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
    ],
)
def test_literal_link_local_targets_are_refused(target):
    outcome = run(spec("http", target))
    assert_failed(outcome, ErrorCode.BLOCKED, "always refused")
    assert outcome.response_ms < 100  # refused before any connection attempt


def test_hostname_resolving_to_a_denied_network_is_refused(settings, httpserver):
    httpserver.expect_request("/health").respond_with_data("ok")
    settings.HEALTH_DENIED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    outcome = run(spec("http", httpserver.url_for("/health")))  # http://localhost:port/
    assert_failed(
        outcome,
        ErrorCode.BLOCKED,
        "localhost resolves only to refused addresses",
        "denied by HEALTH_DENIED_NETWORKS",
    )
    assert httpserver.log == []


def test_denied_port_is_refused(settings, httpserver):
    settings.HEALTH_DENIED_PORTS = [str(httpserver.port)]
    outcome = run(spec("http", httpserver.url_for("/")))
    assert_failed(
        outcome, ErrorCode.BLOCKED, f"port {httpserver.port} is denied by HEALTH_DENIED_PORTS"
    )


def test_malformed_target_is_refused():
    outcome = run(spec("http", "ftp://example.com/"))
    assert_failed(outcome, ErrorCode.BLOCKED, "invalid target: the scheme must be http or https")


def test_200_concurrent_probes_on_one_loop():
    """Many probes at once on one event loop (as a worker runs them), each on a new
    connection, through probe() and through an explicit Prober, on uvloop and asyncio."""
    with ScriptedServer(
        servers.answer(body=b'{"status": "pass"}', content_type="application/json")
    ) as server:
        specs = [make_spec(n, "http", server.url(f"/c/{n}"), timeout=20) for n in range(200)]
        policy = NetworkPolicy.from_settings()

        async def through_probe() -> list[ProbeOutcome]:
            return await asyncio.gather(*(probe(s, policy) for s in specs))

        async def through_prober() -> list[ProbeOutcome]:
            async with Prober(policy) as prober:
                return await asyncio.gather(*(prober.probe(s) for s in specs))

        results = [
            asyncio.run(through_probe()),
            uvloop.run(through_prober()),
        ]
        assert servers.wait_for(lambda: len(server.requests) == 400)
    for outcomes in results:
        assert [o.status for o in outcomes] == [Status.HEALTHY] * 200
        assert {o.details["status"] for o in outcomes} == {"pass"}
    paths = sorted(head.split(b" ")[1] for head in server.requests)
    assert paths == sorted([f"/c/{n}".encode() for n in range(200)] * 2)


# --- TCP --------------------------------------------------------------------------------------


def test_tcp_connects(httpserver):
    outcome = run(spec("tcp", f"127.0.0.1:{httpserver.port}"))
    assert_healthy(outcome)
    by_name = run(spec("tcp", f"localhost:{httpserver.port}"))
    assert_healthy(by_name)


def test_tcp_refused():
    port = servers.closed_port()
    outcome = run(spec("tcp", f"127.0.0.1:{port}"))
    assert_failed(outcome, ErrorCode.REFUSED, f"connection refused by 127.0.0.1:{port}")


def test_tcp_ipv6_refused():
    port = servers.closed_port()
    outcome = run(spec("tcp", f"[::1]:{port}"))
    assert outcome.status == Status.UNHEALTHY
    assert outcome.error_code in (ErrorCode.REFUSED, ErrorCode.CONNECTION)
    assert f"[::1]:{port}" in outcome.errors[0]


def test_tcp_connect_timeout():
    with servers.never_accepting() as port:
        outcome = run(spec("tcp", f"127.0.0.1:{port}", timeout=0.5))
    assert_failed(
        outcome, ErrorCode.TIMEOUT, f"timed out after 0.5s connecting to 127.0.0.1:{port}"
    )


def test_tcp_obeys_the_policy(settings):
    settings.HEALTH_DENIED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert_failed(run(spec("tcp", "localhost:5432")), ErrorCode.BLOCKED, "denied by HEALTH_DENIED")
    assert_failed(run(spec("tcp", "127.0.0.1:5432")), ErrorCode.BLOCKED, "127.0.0.0/8")
    assert_failed(run(spec("tcp", "169.254.169.254:80")), ErrorCode.BLOCKED, "always refused")


def test_tcp_malformed_target():
    assert_failed(run(spec("tcp", "::1:80")), ErrorCode.BLOCKED, "put an IPv6 address in brackets")


# --- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_ok_reports_the_server_version():
    outcome = run(spec("postgres", POSTGRES, password="not-needed-with-trust"))
    assert_healthy(outcome)
    assert outcome.metrics["server_version"][:2].isdigit()


def test_postgres_wrong_port_is_refused():
    port = servers.closed_port()
    outcome = run(spec("postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres"))
    assert_failed(outcome, ErrorCode.REFUSED, f"connection refused by 127.0.0.1:{port}")


def test_postgres_unknown_database_is_reported():
    outcome = run(spec("postgres", "postgresql://postgres@127.0.0.1:5432/no_such_db_here"))
    assert_failed(outcome, ErrorCode.REPORTED, 'database "no_such_db_here" does not exist')


def test_postgres_password_in_the_dsn_is_refused():
    outcome = run(spec("postgres", "postgresql://postgres:hunter22@127.0.0.1:5432/postgres"))
    assert_failed(outcome, ErrorCode.BLOCKED, "put the password in the password field")
    assert "hunter22" not in repr(outcome)


def test_postgres_obeys_the_policy(settings):
    settings.HEALTH_DENIED_PORTS = ["5432"]
    outcome = run(spec("postgres", POSTGRES))
    assert_failed(outcome, ErrorCode.BLOCKED, "port 5432 is denied by HEALTH_DENIED_PORTS")


def test_postgres_server_that_never_answers_times_out():
    with ScriptedServer(servers.silent) as server:
        target = f"postgresql://postgres@127.0.0.1:{server.port}/postgres?sslmode=disable"
        outcome = run(spec("postgres", target, timeout=0.5))
    assert_failed(outcome, ErrorCode.TIMEOUT, "timed out after 0.5s")


# --- Redis ------------------------------------------------------------------------------------


def test_redis_ok():
    outcome = run(spec("redis", REDIS))
    assert_healthy(outcome)
    assert outcome.metrics["redis_version"][0].isdigit()


def test_redis_refused_port():
    port = servers.closed_port()
    outcome = run(spec("redis", f"redis://127.0.0.1:{port}/0"))
    assert_failed(outcome, ErrorCode.REFUSED, f"connection refused by 127.0.0.1:{port}")


def test_redis_error_reply_is_reported_without_the_password():
    outcome = run(spec("redis", REDIS, password="wr0ng-redis-pass"))
    assert_failed(outcome, ErrorCode.REPORTED, "answered AUTH with")
    assert "wr0ng-redis-pass" not in repr(outcome)


def test_redis_bad_database_index():
    outcome = run(spec("redis", "redis://127.0.0.1:6379/100000"))
    assert_failed(outcome, ErrorCode.REPORTED, "answered SELECT with: ERR")


def test_redis_on_a_non_redis_server(httpserver):
    httpserver.expect_request("/").respond_with_data("hi")
    outcome = run(spec("redis", f"redis://127.0.0.1:{httpserver.port}/0"))
    assert outcome.status == Status.UNHEALTHY
    assert outcome.error_code == ErrorCode.CONNECTION


# --- Heartbeat --------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_heartbeat_fresh():
    ping = NOW.timestamp() - 70
    assert_healthy(run(spec("heartbeat", "", last_ping_at=ping, interval=60, grace=30)))


@time_machine.travel(NOW, tick=False)
def test_heartbeat_late():
    ping = NOW.timestamp() - 95
    outcome = run(spec("heartbeat", "", last_ping_at=ping, interval=60, grace=30))
    assert_failed(
        outcome, ErrorCode.NO_HEARTBEAT, "no heartbeat for 95s (expected every 60s + 30s grace)"
    )


def test_heartbeat_never():
    outcome = run(spec("heartbeat", "", last_ping_at=None, interval=60))
    assert_failed(outcome, ErrorCode.NO_HEARTBEAT, "no heartbeat received yet")


# --- Python -----------------------------------------------------------------------------------

CALLABLES = "tests.healthchecks.callables"


@pytest.fixture
def allow_test_callables(settings):
    settings.HEALTH_CALLABLE_PREFIXES = [
        "healthchecks.watch.builtin.",
        f"{CALLABLES}.",
        f"{CALLABLES}_public.",
    ]


def test_builtin_example_is_healthy():
    assert_healthy(run(spec("python", "healthchecks.watch.builtin.always_healthy")))


@pytest.mark.usefixtures("allow_test_callables")
@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("fine", Status.HEALTHY),
        ("async_fine", Status.HEALTHY),
        ("broken", Status.UNHEALTHY),
        ("degraded_word", Status.DEGRADED),
        ("maintenance", Status.MAINTENANCE),
    ],
)
def test_python_return_values(name, status):
    outcome = run(spec("python", f"{CALLABLES}.{name}"))
    assert outcome.status == status
    if status in (Status.UNHEALTHY, Status.DEGRADED):
        assert outcome.error_code == ErrorCode.REPORTED
        assert outcome.errors == [f"{CALLABLES}.{name} reported {status.label}"]


@pytest.mark.usefixtures("allow_test_callables")
def test_python_dict_result():
    outcome = run(spec("python", f"{CALLABLES}.report"))
    assert_failed(outcome, ErrorCode.REPORTED, "queue is 9000 deep")
    assert outcome.warnings == ["consumer lag rising"]
    assert outcome.details == {"queue": "orders", "since": "2025-06-01 12:00:00+00:00"}
    assert outcome.metrics == {"depth": 9000}


@pytest.mark.usefixtures("allow_test_callables")
def test_python_strange_result_is_a_bad_body():
    outcome = run(spec("python", f"{CALLABLES}.strange"))
    assert_failed(outcome, ErrorCode.BAD_BODY, "returned status 42")


@pytest.mark.usefixtures("allow_test_callables")
def test_python_exception_is_unhealthy_with_type_and_message():
    outcome = run(spec("python", f"{CALLABLES}.raises"))
    assert_failed(outcome, ErrorCode.INTERNAL, "raised RuntimeError: disk /var is read-only")


@pytest.mark.usefixtures("allow_test_callables")
@pytest.mark.parametrize("name", ["slow", "async_slow"])
def test_python_slow_callable_times_out(name):
    outcome = run(spec("python", f"{CALLABLES}.{name}", timeout=0.3))
    assert_failed(outcome, ErrorCode.TIMEOUT, f"timed out after 0.3s running {CALLABLES}.{name}")
    assert outcome.response_ms < 900


@pytest.mark.usefixtures("allow_test_callables")
@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("os.system", "is not under HEALTH_CALLABLE_PREFIXES"),
        ("healthchecks.builtinx.always_healthy", "is not under HEALTH_CALLABLE_PREFIXES"),
        (
            "healthchecks.watch.builtin.nothing_here",
            "healthchecks.watch.builtin has no nothing_here",
        ),
        ("healthchecks.watch.builtin.os.system", "cannot import healthchecks.watch.builtin.os"),
        (f"{CALLABLES}.missing_module.fn", f"cannot import {CALLABLES}.missing_module"),
        (f"{CALLABLES}.NOT_CALLABLE", "is not callable"),
        (f"{CALLABLES}.getcwd", "is imported from posix, not defined under a prefix"),
        (f"{CALLABLES}_public.helper", f"is not in {CALLABLES}_public.__all__"),
        (f"{CALLABLES}._private", "is private"),
        ("not a path", "is not a dotted path"),
    ],
)
def test_python_refused_paths(path, reason):
    assert reason in (validate_callable_path(path) or "")
    outcome = run(spec("python", path))
    assert_failed(outcome, ErrorCode.BLOCKED, reason)


@pytest.mark.usefixtures("allow_test_callables")
def test_validate_callable_path_accepts_allowed_callables():
    assert validate_callable_path("healthchecks.watch.builtin.always_healthy") is None
    assert validate_callable_path(f"{CALLABLES}.async_fine") is None
    # Named in the module's __all__: offered, wherever it is defined.
    assert validate_callable_path(f"{CALLABLES}_public.fine") is None
    assert_healthy(run(spec("python", f"{CALLABLES}_public.fine")))


# --- Whatever happens, an outcome -------------------------------------------------------------


def test_unknown_kind_is_an_outcome():
    outcome = run(spec("smtp", "mail:25"))
    assert_failed(outcome, ErrorCode.INTERNAL, "unknown check kind 'smtp'")

"""Schemathesis fuzzes every operation of ``/api/openapi.json`` against a live server, three
times: without credentials, with a read-only token and with a token holding every scope.

Whatever it sends -- values that fit the document and values that do not -- the answer is
never a server error (5xx). A failure shows schemathesis' curl line to reproduce it and the
exception the server logged for that request (found by its ``X-Request-ID``).

Nor does any answer break the document: a status it does not declare, another media type,
a body off its schema (schemathesis' status code, content type and response schema
conformance checks) fails the run, every kind listed once with an example.

The run is deterministic (Hypothesis derandomized, no example database), so it fails or
passes the same way every time. For a longer hunt: ``FUZZ_MAX_EXAMPLES=N`` (cases per
operation), ``FUZZ_COVERAGE=1`` (schemathesis' coverage phase), ``FUZZ_SEED=N`` (other cases).
"""

import logging
import os
import threading

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from healthchecks.models import HealthCheck
from portal.auth import system_actor
from portal.models import Scope
from portal.requestcontext import request_id_var
from services import configs
from services.models import Dependency, Service, Team
from tests.factories import SEED_SCHEMA, ServiceFactory, make_check

pytestmark = [
    pytest.mark.fuzz,
    # The server runs in another thread: the estate and the tokens must be committed.
    pytest.mark.django_db(transaction=True),
]

AUTH_MODES = {
    "anonymous": None,
    "read": ["registry:read", "config:read"],
    "all-scopes": list(Scope.values),
}
# Generated cases per operation: without credentials every answer is a 401 (or a 405), so a
# few show that; the token with every scope reaches the handlers and gets the most.
MAX_EXAMPLES = {"anonymous": 4, "read": 8, "all-scopes": 20}
# A longer hunt: FUZZ_MAX_EXAMPLES=N for every mode; FUZZ_COVERAGE=1 adds schemathesis'
# coverage phase (every boundary and every kind of invalid value the document implies:
# hundreds of requests per operation, minutes per mode).
if os.environ.get("FUZZ_MAX_EXAMPLES"):
    MAX_EXAMPLES = dict.fromkeys(AUTH_MODES, int(os.environ["FUZZ_MAX_EXAMPLES"]))
COVERAGE = os.environ.get("FUZZ_COVERAGE") == "1"
# FUZZ_SEED=N: other cases than the fixed ones (the same again for the same N).
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None

# Path values that exist in the estate: each generated path parameter is sometimes replaced by
# one of these, so that operations reach real rows and not only 404s.
EXISTING = {"name": "svc", "depends_on": "other", "check": "chk", "number": "1"}


class ServerErrors(logging.Handler):
    """ERROR records with a traceback, by the request id of the request that logged them."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.by_request: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or not record.exc_info[1]:
            return
        exc = record.exc_info[1]
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
            tb = tb.tb_next
        where = frames[-1] if frames else "?"
        line = f"{record.name}: {type(exc).__module__}.{type(exc).__qualname__}: {exc} (at {where})"
        with self._lock:
            self.by_request.setdefault(request_id_var.get(), []).append(line)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32's ``from_fixture`` reads and writes ``item._nodeid``, which pytest 9.2
    no longer has (it keeps ``_id``): give it a plain attribute to use."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture
def server_errors():
    handler = ServerErrors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def ensure_estate() -> None:
    """Two services with a dependency, a schema with two configuration versions and a check:
    something for every path to find. Idempotent: the fuzzer deletes things, and after a
    successful DELETE whatever it removed is put back."""
    team, _ = Team.objects.get_or_create(name="core")
    service = Service.objects.filter(name="svc").first() or ServiceFactory(name="svc", team=team)
    other = Service.objects.filter(name="other").first() or ServiceFactory(name="other", team=team)
    Dependency.objects.get_or_create(service=service, depends_on=other)
    if configs.current_version(service) is None:
        actor = system_actor("fuzz")
        configs.put_schema("svc", SEED_SCHEMA, actor)
        configs.publish("svc", {"api_timeout": 10}, 0, actor)
        configs.publish("svc", {"api_timeout": 20}, 1, actor)
    if not HealthCheck.objects.filter(service=service, name="chk").exists():
        make_check(service, name="chk", kind="tcp", target="127.0.0.1:9", timeout=1)


@pytest.fixture
def fuzz_estate(transactional_db):
    ensure_estate()


@pytest.fixture
def confined_probes(settings):
    """The fuzzer creates checks and runs them: confine every probe to 127.0.0.1 port 9
    (nothing listens there), so no generated target reaches another address, port or name."""
    settings.HEALTH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.HEALTH_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.HEALTH_ALLOWED_PORTS = ["9"]


@pytest.fixture(params=list(AUTH_MODES))
def auth_mode(request):
    return request.param


@pytest.fixture
def auth_headers(auth_mode, make_token):
    scopes = AUTH_MODES[auth_mode]
    if scopes is None:
        return {}
    return {"Authorization": f"Bearer {make_token(scopes, name=f'fuzz-{auth_mode}').secret}"}


@pytest.fixture
def conformance():
    """Schema conformance failures: (operation, title) -> an example; each operation's run
    fails at the end if any answer broke the documented schema (one report per kind)."""
    found: dict[tuple[str, str], str] = {}
    yield found
    broken = [f"{op}: {title}\n{example}" for (op, title), example in sorted(found.items())]
    assert not broken, "answers that break the OpenAPI document:\n\n" + "\n\n".join(broken)


@pytest.fixture
def api_schema(live_server, fuzz_estate, confined_probes, auth_mode):
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                "max-examples": MAX_EXAMPLES[auth_mode],
                # The same cases every run, and no example database left behind.
                "deterministic": SEED is None,
                "database": "none",
                # Only the credentials the test sends: no generated tokens or session cookies.
                "with-security-parameters": False,
            },
            "phases": {
                "coverage": {"enabled": COVERAGE},
                "stateful": {"enabled": False},
            },
            "suppress-health-check": ["all"],
            **({"seed": SEED} if SEED is not None else {}),
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json", config=config)
    schema.config.update(base_url=live_server.url)

    @schema.hook
    def before_generate_path_parameters(context, strategy):
        def sometimes_existing(parameters):
            if not isinstance(parameters, dict):
                return st.just(parameters)
            return st.fixed_dictionaries(
                {
                    key: st.sampled_from([value, EXISTING[key]])
                    if key in EXISTING
                    else st.just(value)
                    for key, value in parameters.items()
                }
            )

        return strategy.flatmap(sometimes_existing)

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_no_server_errors(case, auth_headers, server_errors, conformance):
    response = case.call(headers=auth_headers)
    try:
        case.validate_response(response, checks=[not_a_server_error], headers=auth_headers)
    except BaseException as exc:
        request_id = (response.headers.get("x-request-id") or [""])[0]
        logged = server_errors.by_request.get(request_id) or ["(no exception logged)"]
        exc.add_note(f"Server log for request {request_id}:\n  " + "\n  ".join(logged))
        raise
    finally:
        if case.method.upper() == "DELETE" and response.status_code < 300:
            ensure_estate()
    try:
        case.validate_response(
            response,
            checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        )
    except BaseExceptionGroup as group:
        for failure in group.exceptions:
            conformance.setdefault((case.operation.label, failure.title), str(group)[:1500])

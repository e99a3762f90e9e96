"""Sign-in through the organisation's identity provider: OpenID Connect's authorization code
flow with PKCE, spoken by Authlib's Django client (docs/decisions.md, "Sign-in through the
identity provider").

Authlib reads the provider's discovery document (``OIDC_ISSUER`` +
``/.well-known/openid-configuration``), makes the authorization request with ``state``,
``nonce`` and a PKCE challenge (S256), keeps them in the session and takes them back once
(a second use of the same ``state`` finds nothing), exchanges the code, and checks the ID
token: its signature against the provider's keys (fetched again for a key id it does not
know), ``iss``, ``exp``, ``iat``, ``nonce``. Added here: ``aud`` must name this client (Authlib
checks it only through ``azp``: a token for another client carrying ``azp`` = ours passed),
the discovery document must name the issuer configured, and every failure becomes a
``Refused`` with a reason a person can act on, never a 500.
"""

from dataclasses import dataclass
from typing import Any

import requests
import structlog
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.http import HttpResponseRedirect
from joserfc import errors as jose

log = structlog.get_logger(__name__)
NAME = "oidc"

# reason -> (status, what the person is told)
REASONS: dict[str, tuple[int, str]] = {
    "state": (
        400,
        "This sign-in answer does not belong to a sign-in started in this browser, or it was "
        "used already. Start again from the login page.",
    ),
    "provider": (403, "The identity provider did not sign you in: {detail}."),
    "signature": (
        403,
        "The identity provider's answer is not signed with its keys, so it was not believed.",
    ),
    "expired": (403, "The identity provider's answer has expired. Start again."),
    "audience": (403, "The identity provider's answer was made for another application."),
    "nonce": (403, "The identity provider's answer was made for another sign-in."),
    "issuer": (403, "The identity provider's answer comes from another issuer."),
    "token": (403, "The identity provider's answer is not a valid ID token ({detail})."),
    "unreachable": (
        503,
        "The identity provider cannot be reached just now ({detail}). Try again shortly.",
    ),
    "misconfigured": (503, "Sign-in through the identity provider is misconfigured: {detail}."),
}


@dataclass
class Refused(Exception):
    """A sign-in refused: ``reason`` is a key of REASONS (also the security event's)."""

    reason: str
    detail: str = ""

    @property
    def status(self) -> int:
        return REASONS[self.reason][0]

    @property
    def message(self) -> str:
        return REASONS[self.reason][1].format(detail=self.detail or self.reason)


@dataclass(frozen=True)
class SignedIn:
    """What a verified ID token says: its claims, and the token itself (for logout)."""

    claims: dict[str, Any]
    id_token: str


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def discovery_url() -> str:
    return settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration"


_clients: dict[tuple, Any] = {}


def client():
    """Authlib's client for the settings of the moment (one per configuration: it keeps the
    discovery document and the provider's keys between requests)."""
    key = (
        settings.OIDC_ISSUER,
        settings.OIDC_CLIENT_ID,
        settings.OIDC_CLIENT_SECRET,
        tuple(settings.OIDC_SCOPES),
        settings.OIDC_TIMEOUT,
    )
    found = _clients.get(key)
    if found is None:
        found = _clients[key] = OAuth().register(
            name=NAME,
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET or None,
            server_metadata_url=discovery_url(),
            client_kwargs={
                "scope": " ".join(settings.OIDC_SCOPES),
                "code_challenge_method": "S256",
                "default_timeout": settings.OIDC_TIMEOUT,
                # A public client (no secret) proves itself with PKCE alone.
                **({} if settings.OIDC_CLIENT_SECRET else {"token_endpoint_auth_method": "none"}),
            },
        )
    return found


# What the flow needs from the discovery document besides the issuer.
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def metadata() -> dict[str, Any]:
    """The discovery document, once it names the issuer configured and the endpoints the flow
    needs (Refused otherwise: a 503 page, never a 500). One refused is not kept: the next
    sign-in reads it again, so a provider mended needs no restart here."""
    app = client()
    try:
        found = app.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        raise Refused("unreachable", _short(exc)) from None
    except TypeError:  # JSON, but no object: Authlib fails writing its load time into it
        raise Refused("misconfigured", "the discovery document is not a JSON object") from None
    problem = _discovery_problem(found)
    if problem:
        app.server_metadata.clear()
        raise Refused("misconfigured", problem)
    return found


def _discovery_problem(found: dict[str, Any]) -> str:
    if found.get("issuer") != settings.OIDC_ISSUER:
        return (
            f"the discovery document names the issuer {found.get('issuer')!r}, "
            f"not OIDC_ISSUER {settings.OIDC_ISSUER!r}"
        )
    missing = [
        name for name in ENDPOINTS if not isinstance(found.get(name), str) or not found[name]
    ]
    return f"the discovery document names no {', '.join(missing)}" if missing else ""


def authorization_redirect(request, redirect_uri: str) -> tuple[str, HttpResponseRedirect]:
    """The sign-in's ``state`` and the redirect to the provider's authorization endpoint
    (state, nonce and the PKCE verifier kept in the session for the answer): Authlib's
    authorize_redirect, its two steps apart for the state."""
    metadata()
    app = client()
    try:
        started = app.create_authorization_url(redirect_uri)
    except (requests.RequestException, ValueError) as exc:
        raise Refused("unreachable", _short(exc)) from None
    app.save_authorize_data(request, redirect_uri=redirect_uri, **started)
    return started["state"], HttpResponseRedirect(started["url"])


def state_of(request) -> str:
    """The state the answer at the callback names."""
    return request.GET.get("state", "")


def _check_started_here(request) -> None:
    """An answer is read only for a sign-in this browser started: the provider's error
    answer too, whose text the page quotes -- else anyone could make a link showing their
    own words on the portal's page (and the sign-in's state is used up by it)."""
    state = state_of(request)
    app = client()
    if not state or not app.framework.get_state_data(request.session, state):
        raise Refused("state")
    if request.GET.get("error"):
        app.framework.clear_state_data(request.session, state)
        detail = request.GET.get("error_description") or request.GET["error"]
        raise Refused("provider", _short(detail))


def complete(request) -> SignedIn:
    """The provider's answer at the callback, verified; Refused with the reason otherwise."""
    issuer = metadata()["issuer"]
    _check_started_here(request)
    options = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": settings.OIDC_CLIENT_ID},
    }
    try:
        token = client().authorize_access_token(request, claims_options=options)
    except OAuthError as exc:
        if exc.error == "mismatching_state":
            raise Refused("state") from None
        raise Refused("provider", _short(exc.description or exc.error)) from None
    except jose.ExpiredTokenError:
        raise Refused("expired") from None
    except (jose.BadSignatureError, jose.InvalidKeyIdError, jose.MissingKeyError):
        raise Refused("signature") from None
    except jose.ClaimError as exc:
        raise Refused(_claim_reason(exc.claim), exc.claim) from None
    except (jose.JoseError, AuthlibBaseError) as exc:
        raise Refused("token", _short(exc)) from None
    except (requests.RequestException, ValueError) as exc:
        raise Refused("unreachable", _short(exc)) from None
    except (TypeError, KeyError, AttributeError) as exc:
        # JSON of another shape where an object is read: the keys ([...], {} without "keys")
        # or the ID token (a list). Keys are fetched again next time, not kept as they were.
        client().server_metadata.pop("jwks", None)
        log.warning("the provider's answer is not in shape", error=repr(exc)[:200])
        raise Refused(
            "token", "its keys or its ID token are not in the shape of the standard"
        ) from None
    claims = token.get("userinfo")
    if not claims or not token.get("id_token"):
        raise Refused("token", "no ID token in the token endpoint's answer")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255 or not subject.isprintable():
        # OpenID Connect Core 1.0, 2: at most 255 ASCII characters, never empty.
        raise Refused("token", "its sub is not 1 to 255 printable characters")
    return SignedIn(dict(claims), token["id_token"])


def _claim_reason(claim: str) -> str:
    return {"aud": "audience", "azp": "audience", "nonce": "nonce", "iss": "issuer"}.get(
        claim, "token"
    )


def logout_url(id_token: str, post_logout_redirect_uri: str) -> str | None:
    """Where to send a person signing out, so the provider ends its session too
    (RP-initiated logout), or None when the provider offers no end_session_endpoint (or
    cannot be asked just now: the portal's own session is ended either way)."""
    try:
        if not metadata().get("end_session_endpoint"):
            return None
        return client().create_logout_url(
            post_logout_redirect_uri=post_logout_redirect_uri,
            id_token_hint=id_token,
            client_id=settings.OIDC_CLIENT_ID,
        )["url"]
    except Refused as refused:
        log.warning("logout at the identity provider skipped", reason=refused.message)
        return None


def _short(exc: object) -> str:
    return " ".join(str(exc).split())[:200]

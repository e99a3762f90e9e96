"""The sign-in pages: the login page (the identity provider's link, the username/password
form while LOCAL_LOGIN allows it), the start of the OpenID Connect flow and its callback, the
page of a refusal, and logging out (at the provider too, when it offers it).

Each refusal is a page saying what happened and what to do (never a 500, never a
traceback) and a security event ``sign_in_refused`` with its reason (portal.oidc.REASONS,
or ``no_access``, ``username_taken``, ``inactive``).
"""

import structlog
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from portal import directory, oidc, security, sessions

log = structlog.get_logger(__name__)
NEXT = "oidc_next"  # the pages sign-ins started in this browser asked for, by their state
MAX_PENDING = 10
SIGNED_IN = sessions.PROVIDER  # the session's record of its sign-in through the provider
BACKEND = "portal.backends.ThrottledModelBackend"

REFUSALS = {
    "no_access": (
        403,
        "You signed in as {name}, but none of your groups at the identity provider gives "
        "access to this portal. Ask the portal's administrators which group to join; once "
        "you are in it, sign in again.",
    ),
    "username_taken": (
        403,
        "An account named {name} exists in this portal already and is not the one of your "
        "sign-in, so it was not given to you. An administrator can rename or remove that "
        "account; then sign in again.",
    ),
    "inactive": (403, "The account {name} has been switched off by the portal's administrators."),
}


class LoginView(auth_views.LoginView):
    """Django's login view, with the provider's link and LOCAL_LOGIN's switch: off, the form
    is neither shown nor read (and the password backend refuses every attempt)."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        next_url = self.get_redirect_url()
        start = reverse("oidc-start") + (f"?{urlencode({'next': next_url})}" if next_url else "")
        context.update(
            local_login=settings.LOCAL_LOGIN,
            oidc_enabled=oidc.enabled(),
            oidc_start=start,
            session_ended=sessions.ended_message(self.request),
        )
        return context

    def post(self, request, *args, **kwargs):
        if not settings.LOCAL_LOGIN:
            return render_refusal(
                request,
                403,
                "Signing in with a username and password is switched off here: sign in "
                "through your identity provider.",
            )
        return super().post(request, *args, **kwargs)


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's own login form, while LOCAL_LOGIN allows it; the login page otherwise."""
    if settings.LOCAL_LOGIN:
        return admin.site.login(request)
    next_url = request.GET.get("next", "")
    query = f"?{urlencode({'next': next_url})}" if next_url else ""
    return HttpResponseRedirect(reverse("login") + query)


@never_cache
@require_GET
def start(request: HttpRequest) -> HttpResponse:
    """Off to the provider's authorization endpoint, back at ``callback``."""
    if not oidc.enabled():
        raise Http404("sign-in through an identity provider is not configured")
    next_url = request.GET.get("next", "")
    try:
        state, redirect = oidc.authorization_redirect(
            request, request.build_absolute_uri(reverse("oidc-callback"))
        )
    except oidc.Refused as refused:
        return refuse(request, refused.reason, refused.status, refused.message)
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        # Kept by the sign-in's state: two tabs signing in at once each land where they asked.
        pending = _pending(request)
        pending[state] = next_url
        request.session[NEXT] = dict(list(pending.items())[-MAX_PENDING:])
    return redirect


@never_cache
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """The provider's answer: verified (portal.oidc), the person found or made and their
    role and teams set from their groups (portal.directory), then signed in."""
    if not oidc.enabled():
        raise Http404("sign-in through an identity provider is not configured")
    try:
        answer = oidc.complete(request)
    except oidc.Refused as refused:
        return refuse(request, refused.reason, refused.status, refused.message)
    outcome = directory.sign_in(answer.claims)
    if outcome.refusal:
        status, message = REFUSALS[outcome.refusal]
        return refuse(
            request,
            outcome.refusal,
            status,
            message.format(name=repr(outcome.name)),
            who=outcome.name,
            template="registration/no_access.html" if outcome.refusal == "no_access" else None,
        )
    next_url = _pending_next(request) or resolve_url(settings.LOGIN_REDIRECT_URL)
    login(request, outcome.user, backend=BACKEND)
    request.session[SIGNED_IN] = {"id_token": answer.id_token, "issuer": answer.claims["iss"]}
    log.info(
        "signed in through the identity provider",
        user=outcome.name,
        roles=sorted(outcome.roles),
        teams_joined=outcome.teams.joined,
        teams_left=outcome.teams.left,
        teams_unknown=outcome.teams.unknown,
    )
    return HttpResponseRedirect(next_url)


def _pending(request) -> dict[str, str]:
    found = request.session.get(NEXT)
    return dict(found) if isinstance(found, dict) else {}  # a str: a session from before


def _pending_next(request) -> str:
    """Where the sign-in that this answer completes asked to go (and no longer)."""
    pending = _pending(request)
    next_url = pending.pop(oidc.state_of(request), "")
    request.session[NEXT] = pending
    return next_url


def refuse(request, reason: str, status: int, message: str, *, who: str = "", template=None):
    security.record(
        security.Kind.SIGN_IN_REFUSED,
        who or "anonymous",
        security.operation_of(request),
        "refused",
        reason=reason,
    )
    log.warning("sign-in refused", reason=reason, who=who or "anonymous", status=status)
    return render_refusal(request, status, message, template=template)


def render_refusal(request, status: int, message: str, *, template=None) -> HttpResponse:
    context = {
        "message": message,
        "oidc_enabled": oidc.enabled(),
        "local_login": settings.LOCAL_LOGIN,
    }
    return render(request, template or "registration/refused.html", context, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Ends the portal's session; one that signed in through the provider goes on to its
    end_session_endpoint (with the ID token as the hint, back to the login page after),
    when the provider's discovery document names one: through a page that goes there by
    itself, since the site's Content-Security-Policy (form-action 'self') stops a browser
    from following the logout form's redirect to another origin."""
    signed_in = request.session.get(SIGNED_IN) if hasattr(request, "session") else None
    logout(request)
    if signed_in and oidc.enabled():
        back = request.build_absolute_uri(reverse("login"))
        url = oidc.logout_url(signed_in.get("id_token", ""), back)
        if url:  # a page that goes on by itself: see registration/signed_out.html
            return render(request, "registration/signed_out.html", {"provider_logout_url": url})
    return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))

"""Signed-in sessions end on time, decided on the server when a request asks who is signed in:
SESSION_IDLE_SECONDS without a request, and SESSION_MAX_SECONDS after the sign-in whatever
happens (the browser's cookie lasts no longer, but a cookie kept past it is refused here).
With LOCAL_LOGIN off, a session opened with a password (before the switch) ends at its next
request too.

A session records when it signed in and when it was last used. The last use is written at
most every tenth of the idle time (at most every minute), so a busy session costs no write per
request; a session is therefore ended up to that much early, never late. A session made
before this existed starts counting at its first request.
"""

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

PROVIDER = "oidc"  # a session signed in through the identity provider holds it (portal.signin)
STARTED = "portal_session_started"
SEEN = "portal_session_seen"
ENDED = "portal_session_ended"  # why the last one ended, for the login page to say


def on_logged_in(sender, request=None, user=None, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        now = timezone.now().timestamp()
        request.session[STARTED] = request.session[SEEN] = now


def touch_every() -> float:
    return min(60.0, settings.SESSION_IDLE_SECONDS / 10)


def expiry(session, now: float) -> str:
    """Why this signed-in session is over ("idle", "max", "local_login"), or "" while it is
    not. With LOCAL_LOGIN off, a session a password opened (before the switch) is over too:
    the identity provider only, as the setting says -- not until the timeouts."""
    if not settings.LOCAL_LOGIN and PROVIDER not in session:
        return "local_login"
    started, seen = session.get(STARTED), session.get(SEEN)
    if started is None or seen is None:
        return ""
    if now - started >= settings.SESSION_MAX_SECONDS:
        return "max"
    if now - seen >= settings.SESSION_IDLE_SECONDS:
        return "idle"
    return ""


class SessionTimeoutMiddleware:
    """Judges the session when the request first asks who is signed in (request.user), not
    on every request: reading the session reads the database, and an answer that needs no
    one -- liveness while the database is away -- must not wait for it or fail with it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None:
            request.user = SimpleLazyObject(lambda: _judged(request, user))
        return self.get_response(request)


def _judged(request, user):
    """The signed-in user, or AnonymousUser once the session has ended (and it is flushed)."""
    session = getattr(request, "session", None)
    if session is None or SESSION_KEY not in session:
        return user
    now = timezone.now().timestamp()
    ended = expiry(session, now)
    if ended:
        request.user = user  # logout reads who it signs out: not this lazy object again
        logout(request)  # the session flushed, request.user anonymous
        request.session[ENDED] = ended
        return AnonymousUser()
    if session.get(STARTED) is None:
        session[STARTED] = session[SEEN] = now
    elif now - session[SEEN] >= touch_every():
        session[SEEN] = now
    return user


def ended_message(request) -> str:
    """What the login page says about a session the portal ended (once)."""
    reason = request.session.pop(ENDED, "") if hasattr(request, "session") else ""
    if reason == "idle":
        return "Your session ended after a while without use. Sign in again."
    if reason == "max":
        return "Your session reached its longest allowed time. Sign in again."
    if reason == "local_login":
        return (
            "Your session was opened with a password, and signing in with a password is "
            "switched off here now. Sign in through your identity provider."
        )
    return ""

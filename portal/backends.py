"""Logging in: Django's model backend behind the login throttle (portal.security), and off
with LOCAL_LOGIN=false (sign-in through the identity provider only: portal.signin)."""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from portal import security


class ThrottledModelBackend(ModelBackend):
    """Refuses every attempt, right password or not, from a (name, address) pair -- or a
    (name, browser) pair, for a browser holding the name's device cookie -- locked after too
    many failures, or a pair with a failure while the name or the address is strict
    (portal.security); each refusal is a security event (throttled), and neither counts as a
    failure nor lengthens the lock: it ends LOGIN_LOCK_SECONDS after it began, as
    docs/operating.md promises. Other pairs are not refused: the owner signs in elsewhere."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LOCAL_LOGIN:  # no password is read, whatever asks (admin, API, shell)
            return None
        refusal = (
            security.login_refusal(security.login_origin(request, username)) if username else ""
        )
        if refusal:
            security.record(
                security.Kind.LOGIN_THROTTLED,
                username,
                security.operation_of(request),
                "refused",
                reason=refusal,
            )
            if request is not None:  # Django reports it as a failed login: not one more
                request.login_throttled = True
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)

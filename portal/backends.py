"""Logging in: Django's model backend behind the login throttle (portal.security)."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from portal import ratelimit, security


class ThrottledModelBackend(ModelBackend):
    """Refuses every attempt, right password or not, while the user name or the address is
    locked out after too many failures; each refusal is a security event (throttled), and
    neither counts as a failure nor lengthens the lock: it ends LOGIN_LOCK_SECONDS after it
    began, as the README promises."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        address = ratelimit.client_address(request.META) if request is not None else ""
        if username and security.login_locked(username, address):
            security.record(
                security.Kind.LOGIN_THROTTLED,
                username,
                security.operation_of(request),
                "refused",
                reason="too many failed logins; locked for a while",
            )
            if request is not None:  # Django reports it as a failed login: not one more
                request.login_throttled = True
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)

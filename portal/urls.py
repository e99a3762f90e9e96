from django.contrib import admin
from django.urls import include, path, re_path

from portal import signin, views
from portal.api import api

# The apps' URLs are included by module name: the core (portal) imports no app.
urlpatterns = [
    path("", include("pages.urls")),
    path("accounts/login/", signin.LoginView.as_view(), name="login"),
    # Under /accounts/login/: the rate limiter's login class (portal.ratelimit).
    path("accounts/login/oidc/", signin.start, name="oidc-start"),
    path("accounts/login/oidc/callback/", signin.callback, name="oidc-callback"),
    path("accounts/logout/", signin.logout_view, name="logout"),
    path("admin/login/", signin.admin_login),
    # The admin's *Log out* too: at the provider as well, for a session that signed in there.
    path("admin/logout/", signin.logout_view),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("health/", views.liveness, name="liveness"),
    path("health/", include("healthchecks.web.urls")),
    path("", include("healthchecks.web.root_urls")),
    # Anything else under the machine-read prefixes: the error shape, in development too.
    re_path(r"^(?:api|health|metrics)/", views.no_such_endpoint),
    # Browsers ask for it on every page, the admin's included.
    path("favicon.ico", views.favicon),
]

handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"

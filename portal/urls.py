from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views
from portal.api import api

urlpatterns = [
    path("", include("services.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("health/", views.liveness, name="liveness"),
    path("health/", include("healthchecks.urls")),
    path("metrics", views.prometheus_metrics, name="metrics"),
    # Browsers ask for it on every page, the admin's included.
    path("favicon.ico", views.favicon),
]

if settings.DEMO_ENDPOINTS:
    from healthchecks import demo

    urlpatterns += [
        path("demo/switch/<str:name>", demo.switch),
        path("demo/<str:name>", demo.target),
    ]

handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"

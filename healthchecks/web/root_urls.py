"""The health engine's URLs outside /health/: Prometheus' /metrics and, in development, the
demo targets. Included by portal.urls by name, so the core imports no app."""

from django.conf import settings
from django.urls import path

from healthchecks.watch import demo
from healthchecks.web import views

urlpatterns = [path("metrics", views.prometheus_metrics, name="metrics")]

if settings.DEMO_ENDPOINTS:
    urlpatterns += [
        path("demo/switch/<str:name>", demo.switch),
        path("demo/<str:name>", demo.target),
    ]

from django.urls import path

from healthchecks.web import openapi, views

app_name = "healthchecks"
urlpatterns = [
    path("services", views.services, name="services"),
    path("service/<str:name>", views.service, name="service"),
    path("service/<str:name>/history", views.service_history, name="service_history"),
    path("metrics", views.metrics, name="metrics"),
    path("predictive", views.predictive, name="predictive"),
    path("openapi.json", openapi.openapi_json, name="openapi"),
    path("heartbeat/<str:token>", views.heartbeat, name="heartbeat"),
    path("heartbeat/<str:token>/<str:signal>", views.heartbeat, name="heartbeat_signal"),
]

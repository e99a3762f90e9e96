from django.urls import path

from pages import (
    alert_actions,
    audit,
    dependency_map,
    maintenance,
    service_page,
    status_page,
    views,
)

app_name = "pages"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("wall/", views.wall, name="wall"),
    path("map/", dependency_map.dependency_map, name="map"),
    path("status/", status_page.status_page, name="status"),
    path("config/drift", views.drift, name="drift"),
    path("audit/", audit.audit_log, name="audit"),
    path("audit/security/", audit.security_events, name="audit_security"),
    path("services/<str:name>/", service_page.service_page, name="service"),
    path("services/<str:name>/run-checks", service_page.run_checks, name="run_checks"),
    path("alerts/<int:alert_id>/acknowledge", alert_actions.acknowledge, name="alert_acknowledge"),
    path("alerts/<int:alert_id>/notes", alert_actions.add_note, name="alert_note"),
    path("alerts/<int:alert_id>/ack/<str:token>/", alert_actions.ack_link, name="alert_ack_link"),
    path("maintenance/", maintenance.maintenance, name="maintenance"),
    path("maintenance/history/", maintenance.history, name="maintenance_history"),
    path(
        "maintenance/windows/<int:window_id>/cancel",
        maintenance.cancel_window,
        name="maintenance_window_cancel",
    ),
    path(
        "maintenance/service-checklists",
        maintenance.start_service_checklist,
        name="start_service_checklist",
    ),
    path("maintenance/runs/<int:run_id>/", maintenance.run_detail, name="checklist_run"),
    path(
        "maintenance/runs/<int:run_id>/items/<int:item_id>/tick",
        maintenance.tick,
        name="checklist_tick",
    ),
    path("maintenance/runs/<int:run_id>/sign-off", maintenance.sign_off, name="checklist_sign_off"),
]

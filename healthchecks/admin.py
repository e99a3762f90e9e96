"""Admin for checks: definitions are validated by the same rules as the API; state, history,
incidents and status changes are read-only."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from healthchecks import checks
from healthchecks.models import HealthCheck, Incident, ServiceHealth, StatusChange
from healthchecks.status import Status
from portal.admin_base import RecordAdmin, ScopedAdmin
from portal.models import Scope


class HealthCheckForm(forms.ModelForm):
    class Meta:
        model = HealthCheck
        fields = [
            "service",
            "name",
            "kind",
            "target",
            "interval",
            "timeout",
            "retries",
            "latency_threshold_ms",
            "is_critical",
            "enabled",
            "options",
        ]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        state = {
            "kind": data["kind"],
            "target": data.get("target", ""),
            "interval": data["interval"],
            "timeout": data["timeout"],
        }
        for field, reason in checks.definition_errors(state).items():
            self.add_error(field if field in self.fields else None, reason)
        return data


@admin.register(HealthCheck)
class HealthCheckAdmin(ScopedAdmin):
    read_scope, write_scope = Scope.REGISTRY_READ, Scope.HEALTH_WRITE
    form = HealthCheckForm
    list_display = [
        "name",
        "service",
        "kind",
        "target",
        "interval",
        "status",
        "is_critical",
        "enabled",
    ]
    list_filter = ["kind", "enabled", "is_critical", "state__status"]
    search_fields = ["name", "service__name", "target"]
    list_select_related = ["service", "state"]
    autocomplete_fields = ["service"]
    readonly_fields = ["next_due", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        """A heartbeat's token is its credential: shown only to who may write the check."""
        shown = ["heartbeat_token"] if self.holds(request, self.write_scope) else []
        return [*shown, *self.readonly_fields]

    @admin.display(description="status", ordering="state__status")
    def status(self, obj):
        state = getattr(obj, "state", None)
        return Status(state.status).label if state else "unknown"

    @admin.display(description="next due")
    def next_due(self, obj):
        return checks.next_due_at(obj) or "not scheduled (disabled)"

    def save_model(self, request, obj, form, change):
        """Through healthchecks.checks.save, so secrets stay encrypted, a heartbeat gets its
        token and a new interval applies at once."""
        existing = HealthCheck.objects.get(pk=obj.pk) if change else None
        state = checks.stored_state(existing) if existing else {"secrets": {}}
        for key in (*checks.SCALARS, "is_critical", "options"):
            state[key] = getattr(obj, key)
        saved = checks.save(obj.service_id, obj.name, state, existing, timezone.now())
        obj.pk = saved.pk


@admin.register(ServiceHealth)
class ServiceHealthAdmin(RecordAdmin):
    read_scope = Scope.REGISTRY_READ
    list_display = ["service", "status", "since", "reason"]
    list_filter = ["status"]
    search_fields = ["service__name"]
    list_select_related = ["service"]


@admin.register(StatusChange)
class StatusChangeAdmin(RecordAdmin):
    read_scope = Scope.REGISTRY_READ
    list_display = ["at", "service", "health_check", "from_status", "to_status", "cause"]
    list_filter = ["to_status"]
    search_fields = ["service__name", "cause"]
    list_select_related = ["service", "health_check"]
    date_hierarchy = "at"


@admin.register(Incident)
class IncidentAdmin(RecordAdmin):
    read_scope = Scope.REGISTRY_READ
    list_display = ["service", "opened_at", "closed_at", "worst_status", "duration", "cause"]
    list_filter = ["worst_status", ("closed_at", admin.EmptyFieldListFilter)]
    search_fields = ["service__name", "cause"]
    list_select_related = ["service"]
    date_hierarchy = "opened_at"

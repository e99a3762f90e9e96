"""Admin for checks: definitions are validated by the same rules as the API; state, history,
incidents and status changes are read-only."""

from django import forms
from django.contrib import admin

from healthchecks import checks
from healthchecks.models import HealthCheck, Incident, ServiceHealth, StatusChange
from healthchecks.probes import KINDS
from healthchecks.status import Status
from portal.admin_base import RecordAdmin, ScopedAdmin
from portal.auth import request_principal
from portal.errors import PortalError
from portal.models import Scope


class HealthCheckForm(forms.ModelForm):
    """The model's fields, validated as the API validates a check (``checks.fields_from``):
    the reasons come back on the fields they belong to."""

    kind = forms.ChoiceField(choices=[(kind.name, kind.label) for kind in KINDS.values()])

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
        service = data.get("service") or self.instance.service
        name = data.get("name") or self.instance.name
        try:
            self.check_fields = checks.fields_from(data)
            checks.validate_one(service.name, name, self.check_fields)
        except PortalError as exc:
            for field, reason in exc.fields.items() or {None: exc.message}.items():
                where = {"critical": "is_critical"}.get(field, field)
                self.add_error(where if where in self.fields else None, f"{field}: {reason}")
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

    @admin.display(description="status", ordering="state__status")
    def status(self, obj):
        state = getattr(obj, "state", None)
        return Status(state.status).label if state else "unknown"

    @admin.display(description="next due")
    def next_due(self, obj):
        return checks.next_due_at(obj) or "not scheduled (disabled)"

    def get_readonly_fields(self, request, obj=None):
        """A heartbeat's token is its credential: shown only to who may write the check. A
        check's service and name are its identity (pipelines name it): fixed once made."""
        shown = ["heartbeat_token"] if self.holds(request, self.write_scope) else []
        identity = ["service", "name"] if obj else []
        return [*identity, *shown, *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        """Through healthchecks.checks, like the API: validated, scheduled, audited; secrets
        (headers, password) the form does not show are kept."""
        actor = request_principal(request)
        checks.put_one(obj.service.name, obj.name, form.check_fields, actor)
        obj.pk = HealthCheck.objects.get(service=obj.service, name=obj.name).pk

    def delete_model(self, request, obj):
        checks.delete_one(obj.service.name, obj.name, request_principal(request))

    def delete_queryset(self, request, queryset):
        actor = request_principal(request)
        for service, name in queryset.values_list("service__name", "name"):
            checks.delete_one(service, name, actor)


@admin.register(ServiceHealth)
class ServiceHealthAdmin(RecordAdmin):
    deletable = False  # derived history: it changes only as the checks do
    read_scope = Scope.REGISTRY_READ
    list_display = ["service", "status", "since", "reason"]
    list_filter = ["status"]
    search_fields = ["service__name"]
    list_select_related = ["service"]


@admin.register(StatusChange)
class StatusChangeAdmin(RecordAdmin):
    deletable = False  # derived history: it changes only as the checks do
    read_scope = Scope.REGISTRY_READ
    list_display = ["at", "service", "health_check", "from_status", "to_status", "cause"]
    list_filter = ["to_status"]
    search_fields = ["service__name", "cause"]
    list_select_related = ["service", "health_check"]
    date_hierarchy = "at"


@admin.register(Incident)
class IncidentAdmin(RecordAdmin):
    deletable = False  # derived history: it changes only as the checks do
    read_scope = Scope.REGISTRY_READ
    list_display = ["service", "opened_at", "closed_at", "worst_status", "duration", "cause"]
    list_filter = ["worst_status", ("closed_at", admin.EmptyFieldListFilter)]
    search_fields = ["service__name", "cause"]
    list_select_related = ["service"]
    date_hierarchy = "opened_at"

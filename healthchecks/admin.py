"""Admin for checks: definitions are validated by the same rules as the API; state, history,
incidents and status changes are read-only."""

from typing import Literal, get_origin

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from healthchecks import checks
from healthchecks.models import HealthCheck, Incident, ServiceHealth, StatusChange
from healthchecks.probes import KINDS
from healthchecks.status import Status
from portal import humanize, ratelimit
from portal.admin_base import RecordAdmin, ScopedAdmin
from portal.auth import request_principal
from portal.errors import PortalError
from portal.models import Scope


def _option_field(info) -> forms.Field | None:
    """A form field for one option of a kind (pydantic field info), None for lists, maps and
    anything else that stays in the JSON."""
    annotation = info.annotation
    choices = getattr(annotation, "__args__", None)
    if get_origin(annotation) is Literal and choices:
        return forms.ChoiceField(choices=[(c, c) for c in choices], required=False)
    if annotation is bool:
        return forms.BooleanField(required=False)
    if annotation is int:
        return forms.IntegerField(required=False)
    if annotation is float:
        return forms.FloatField(required=False)
    if annotation is str:
        return forms.CharField(required=False)
    return None


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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.options or {} if self.instance.pk else {}
        for field, name in self.option_fields.items():
            if name in stored:
                self.fields[field].initial = stored[name]
        if self.option_fields and "options" in self.fields:
            self.fields["options"].help_text = "Other options, as JSON (lists and maps)."

    option_fields: dict[str, str] = {}  # form field -> option name (set per kind: for_kind)

    @classmethod
    def for_kind(cls, kind_name: str) -> type["HealthCheckForm"]:
        """This form with each plain option of the kind as a field of its own (a choice, a
        number, a box); lists and maps stay in the JSON ``options`` field."""
        kind = KINDS.get(kind_name)
        if kind is None or kind.options is None:
            return cls
        declared: dict = {}
        names: dict[str, str] = {}
        for name, info in kind.options.model_fields.items():
            field = None if name in kind.secrets else _option_field(info)
            if field is None:
                continue
            field.initial = info.get_default(call_default_factory=True)
            field.help_text = info.description or f"{kind.label}: {name}"
            declared[f"option_{name}"] = field
            names[f"option_{name}"] = name
        return type(f"HealthCheckForm_{kind_name}", (cls,), {**declared, "option_fields": names})

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if self.option_fields:
            options = dict(data.get("options") or {})
            # An unticked box is an answer (False); an empty number means "as it was".
            for field, name in self.option_fields.items():
                if data.get(field) not in (None, ""):
                    options[name] = data[field]
            data["options"] = options
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
    actions = ["run_now"]

    @admin.action(description="Run the selected checks now (the results are recorded)")
    def run_now(self, request, queryset):
        if not self.holds(request, Scope.HEALTH_WRITE):
            self.message_user(request, "running checks needs health:write", messages.ERROR)
            return
        actor = request_principal(request)
        ratelimit.mark_deliberate(request)  # it waits on the targets: slow on purpose
        for check in queryset.select_related("service").order_by("service__name", "name"):
            if not actor.may_change(check.service.name):
                self.message_user(
                    request, actor.ownership_denied(check.service.name).message, messages.ERROR
                )
                continue
            outcome = checks.run_now(check, actor)
            errors = "; ".join(outcome.errors)
            self.message_user(
                request,
                f"{check}: {outcome.status.label}" + (f" ({errors})" if errors else ""),
                messages.SUCCESS if outcome.status == Status.HEALTHY else messages.WARNING,
            )

    def _last_result(self, obj, ping: bool):
        """What the check last saw; for a heartbeat, with ``ping``, the URL to call (a
        credential: the writer's field only) and a curl line."""
        state = getattr(obj, "state", None) if obj.pk else None
        if state is None or state.last_result_at is None:
            parts = [format_html("{}", "no result yet")]
        else:
            outcome = state.last_outcome or {}
            parts = [
                format_html(
                    "<strong>{}</strong> at {} UTC, {} ms{}",
                    Status(state.status).label,
                    f"{state.last_result_at:%Y-%m-%d %H:%M:%S}",
                    round((state.last_response_us or 0) / 1000, 1),
                    f", {state.consecutive_failures} failures in a row"
                    if state.consecutive_failures
                    else "",
                )
            ]
            for label in ("errors", "warnings"):
                if outcome.get(label):
                    parts.append(format_html("{}: {}", label, "; ".join(map(str, outcome[label]))))
            if outcome.get("metrics"):
                parts.append(format_html_join(", ", "{}={}", sorted(outcome["metrics"].items())))
        if obj.pk:
            page = obj.service.get_absolute_url()
            parts.append(format_html('<a href="{}">the service\'s page</a>', page))
        if ping and obj.heartbeat_token:
            url = f"{settings.PORTAL_BASE_URL.rstrip('/')}/health/heartbeat/{obj.heartbeat_token}"
            parts.append(format_html("ping: <code>curl -fsS -m 10 {}</code>", url))
        return format_html_join("", "<div>{}</div>", ((p,) for p in parts))

    @admin.display(description="last result")
    def last_result(self, obj):
        return self._last_result(obj, ping=False)

    @admin.display(description="last result")
    def last_result_and_ping(self, obj):
        return self._last_result(obj, ping=True)

    def get_form(self, request, obj=None, change=False, **kwargs):
        """A check's own kind decides which option fields its page shows (to who may change
        it: a reader sees the options as stored)."""
        if obj is not None and self.has_change_permission(request, obj):
            kwargs["form"] = self.form.for_kind(obj.kind)
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="status", ordering="state__status")
    def status(self, obj):
        state = getattr(obj, "state", None)
        return Status(state.status).label if state else "unknown"

    @admin.display(description="next due")
    def next_due(self, obj):
        due = checks.next_due_at(obj)
        return f"{due:%Y-%m-%d %H:%M:%S} UTC" if due else "not scheduled (disabled)"

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        """Running checks is offered to who may run them."""
        actions = super().get_actions(request, action_location)
        if not self.holds(request, Scope.HEALTH_WRITE):
            actions.pop("run_now", None)
        return actions

    def get_urls(self):
        run = self.admin_site.admin_view(self.run_one)
        return [
            path("<path:object_id>/run/", run, name="healthchecks_healthcheck_run"),
            *super().get_urls(),
        ]

    def run_one(self, request, object_id):
        """The "Run now" button of a check's page (POST): its result recorded, then back."""
        check = self.get_object(request, object_id)
        if request.method != "POST" or check is None:
            return HttpResponseNotAllowed(["POST"])
        if not (
            self.has_change_permission(request, check) and self.holds(request, Scope.HEALTH_WRITE)
        ):
            raise PermissionDenied("running checks needs health:write")
        self.run_now(request, HealthCheck.objects.filter(pk=check.pk))
        return HttpResponseRedirect(
            reverse("admin:healthchecks_healthcheck_change", args=[check.pk])
        )

    def get_readonly_fields(self, request, obj=None):
        """A heartbeat's token is its credential: shown only to who may write the check. A
        check's service and name are its identity (pipelines name it): fixed once made."""
        writer = self.holds(request, self.write_scope) and self.owns(request, obj)
        shown = ["heartbeat_token", "last_result_and_ping"] if writer else ["last_result"]
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
    list_display = ["service", "opened_at", "closed_at", "worst_status", "lasted", "cause"]
    list_filter = ["worst_status", ("closed_at", admin.EmptyFieldListFilter)]
    search_fields = ["service__name", "cause"]
    list_select_related = ["service"]
    date_hierarchy = "opened_at"

    @admin.display(description="duration")
    def lasted(self, obj):
        return humanize.duration(obj.duration) + ("" if obj.closed_at else " (ongoing)")

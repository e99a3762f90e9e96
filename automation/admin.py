"""Admin for alerts (read, acknowledge) and notification channels (through
automation.channels, like the API: validated, encrypted, audited; the URL never shown)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation, csrf_protect_m

from automation import alerts, channels, tryout
from automation.models import ALERT_EVENTS, Alert, Delivery, Event, NotificationChannel
from portal.admin_base import RecordAdmin, ScopedAdmin, delete_each
from portal.auth import check_ownership, check_reach, request_principal
from portal.errors import PortalError
from portal.models import Scope
from services import maintenance
from services.models import MaintenanceWindow


class ChannelForm(forms.ModelForm):
    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="An apprise URL (json://host/path, slack://..., mailto://...). Stored "
        "encrypted and never shown; leave empty to keep the stored one.",
    )
    teams = forms.CharField(
        required=False, help_text="Team names, comma-separated; empty: every team."
    )
    events = forms.MultipleChoiceField(
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[e.value for e in ALERT_EVENTS],
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "url", "teams", "events", "remind_every_minutes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["teams"] = ", ".join(self.instance.teams)
            self.initial["url"] = ""
        else:
            self.fields["url"].required = True

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        url = data.get("url") or (channels.url_of(self.instance) if self.instance.pk else "")
        teams = [t.strip() for t in (data.get("teams") or "").split(",") if t.strip()]
        self.channel_in = channels.ChannelIn(
            url=url,
            teams=teams,
            events=data["events"],
            remind_every_minutes=data.get("remind_every_minutes"),
        )
        try:
            channels.validate(data.get("name") or self.instance.name, self.channel_in)
        except PortalError as exc:
            for field, reason in exc.fields.items() or {None: exc.message}.items():
                self.add_error(field if field in self.fields else None, reason)
        try:  # a channel hears of its teams' services: the author's own, as in the API
            check_reach(self.principal, teams=teams, what="a channel")
        except PortalError as exc:
            self.add_error("teams", exc.message)
        return data


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ScopedAdmin):
    read_scope, write_scope = Scope.AUTOMATION_READ, Scope.AUTOMATION_WRITE
    form = ChannelForm
    list_display = ["name", "url_shown", "teams", "events", "remind_every_minutes", "updated_at"]
    search_fields = ["name"]
    actions = ["send_test"]

    @admin.action(
        description="Send a test message",
        permissions=["change"],
        location=[ActionLocation.CHANGE_FORM, ActionLocation.CHANGE_LIST],
    )
    def send_test(self, request, queryset):
        """The API's test (automation.tryout), one channel at a time, its outcome said."""
        actor = request_principal(request)
        for name in queryset.values_list("name", flat=True):
            try:
                outcome = tryout.send_test_message(name, actor)
            except PortalError as exc:
                self.message_user(request, f"{name}: {exc.message}", messages.ERROR)
                continue
            if outcome.ok:
                status = f", HTTP {outcome.http_status}" if outcome.http_status else ""
                said = f"{name}: test message sent ({outcome.duration_ms} ms{status})"
                self.message_user(request, said, messages.SUCCESS)
            else:
                said = f"{name}: test message failed after {outcome.duration_ms} ms: "
                self.message_user(request, said + (outcome.error or ""), messages.ERROR)

    def get_readonly_fields(self, request, obj=None):
        return ["name", "url_shown"] if obj else []

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The test button on the change page is an action, which saves nothing of the form:
        it runs outside the transaction Django opens for a form's POST, which must not stay
        open (on SQLite: the database locked) while a receiver takes its timeout."""
        if object_id and _is_action(request):
            with self.saying_why(request, object_id, "change"):
                return self._changeform_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.principal = request_principal(request)  # a class made for this request
        return form

    def owns(self, request, obj) -> bool:
        teams = request_principal(request).teams
        return obj is None or teams is None or (bool(obj.teams) and set(obj.teams) <= teams)

    def ownership_refusal(self, request, obj) -> str:
        try:
            check_reach(request_principal(request), teams=obj.teams, what="a channel")
        except PortalError as exc:
            return exc.message
        return ""

    def save_model(self, request, obj, form, change):
        channel, _ = channels.put_channel(obj.name, form.channel_in, request_principal(request))
        obj.pk = channel.pk

    def delete_model(self, request, obj):
        channels.delete_channel(obj.name, request_principal(request))

    def delete_queryset(self, request, queryset):
        actor = request_principal(request)
        for name in queryset.values_list("name", flat=True):
            try:
                channels.delete_channel(name, actor)
            except PortalError as exc:
                messages.error(request, exc.message)


def _is_action(request) -> bool:
    saves = ("_save", "_continue", "_addanother", "_saveasnew")
    post = request.POST
    return (
        request.method == "POST"
        and "CHANGE_FORM-action" in post
        and not any(key in post for key in saves)
    )


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["channel_name", "event", "state", "attempts", "not_before", "finished_at", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    deletable = False  # the record of what happened and who was told
    read_scope = Scope.AUTOMATION_READ
    list_display = ["service", "status", "opened_at", "resolved_at", "root", "acknowledged_by"]
    list_filter = ["status", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["service__name", "cause"]
    list_select_related = ["service", "root__service"]
    date_hierarchy = "opened_at"
    inlines = [DeliveryInline]
    actions = ["acknowledge"]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        """Acknowledging is offered to who may acknowledge."""
        actions = super().get_actions(request, action_location)
        if not self.holds(request, Scope.AUTOMATION_WRITE):
            actions.pop("acknowledge", None)
        return actions

    @admin.action(description="Acknowledge the selected alerts")
    def acknowledge(self, request, queryset):
        if not self.holds(request, Scope.AUTOMATION_WRITE):
            self.message_user(request, "acknowledging needs automation:write", messages.ERROR)
            return
        actor = request_principal(request)
        done = 0
        for alert_id in queryset.filter(acknowledged_at=None).values_list("id", flat=True):
            alerts.acknowledge(alert_id, actor)
            done += 1
        self.message_user(request, f"{done} alert(s) acknowledged")


class WindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["services", "team", "starts_at", "ends_at", "reason", "rrule", "tz"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tz"].required = False  # left empty: UTC, as the API

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        self.window_in = maintenance.WindowIn(
            services=[s.name for s in data.get("services") or []],
            team=data["team"].name if data.get("team") else None,
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            reason=data.get("reason") or "",
            rrule=(data.get("rrule") or "").strip(),
            tz=(data.get("tz") or "UTC").strip(),
        )
        try:
            maintenance.validate(self.window_in)
        except PortalError as exc:
            for field, reason in exc.fields.items():
                self.add_error(field if field in self.fields else None, reason)
        return data


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(ScopedAdmin):
    """Windows are planned and cancelled, never edited (a change is a new window): made and
    deleted through services.maintenance, like the API."""

    read_scope, write_scope = Scope.AUTOMATION_READ, Scope.AUTOMATION_WRITE
    form = WindowForm
    list_display = [
        "id",
        "starts_at",
        "ends_at",
        "rrule",
        "tz",
        "team",
        "reason",
        "created_by",
        "cancelled_at",
    ]
    list_select_related = ["team"]
    filter_horizontal = ["services"]
    date_hierarchy = "starts_at"

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def owns(self, request, obj) -> bool:
        """A window is its services' and its team's (it has no one service to judge it by):
        an operator deletes only one that covers nothing outside their teams."""
        return obj is None or not self.ownership_refusal(request, obj)

    def ownership_refusal(self, request, obj) -> str:
        services = list(obj.services.values_list("name", flat=True))
        try:
            check_ownership(
                request_principal(request), services, [obj.team.name] if obj.team_id else []
            )
        except PortalError as exc:
            return exc.message
        return ""

    def save_model(self, request, obj, form, change):
        obj.pk = maintenance.create_window(form.window_in, request_principal(request)).pk

    def save_related(self, request, form, formsets, change):
        pass  # the services were set by create_window

    def delete_model(self, request, obj):
        maintenance.delete_window(obj.id, request_principal(request))

    def delete_queryset(self, request, queryset):
        delete_each(self, request, queryset)  # each through delete_window; refusals said

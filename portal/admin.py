from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from portal import audit, tokens
from portal.admin_base import RecordAdmin, delete_each
from portal.auth import Role, request_principal, role_of
from portal.errors import Forbidden
from portal.models import ApiToken, AuditEntry, Heartbeat, Scope, SecurityEvent
from portal.ownership import Ownership

admin.site.site_header = "Service portal administration"
admin.site.site_title = "Service portal admin"
admin.site.index_title = "Registry, configuration, health, automation and checklists"
admin.site.site_url = "/"


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    services = forms.CharField(
        required=False,
        help_text="Comma-separated service names this token is limited to; empty for all.",
    )
    teams = forms.CharField(
        required=False,
        help_text="Comma-separated team names: the token reaches their services too.",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "services", "teams", "expires_at", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["services"] = ", ".join(self.instance.services)
            self.initial["teams"] = ", ".join(self.instance.teams)

    @staticmethod
    def _names(raw: str) -> list[str]:
        return sorted({name.strip() for name in raw.split(",") if name.strip()})

    def clean_services(self) -> list[str]:
        return self._names(self.cleaned_data["services"])

    def clean_teams(self) -> list[str]:
        teams = self._names(self.cleaned_data["teams"])
        unknown = sorted(set(teams) - Ownership.teams_named(teams))
        if unknown:
            raise forms.ValidationError(f"No team named {', '.join(unknown)}.")
        return teams


def _is_admin(request) -> bool:
    return role_of(request.user) == Role.ADMIN


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are an admin's to make, change and revoke (whatever model permissions a
    person was given by hand), through portal.tokens: nobody grants a scope or a service they
    do not hold, and every change is audited."""

    form = ApiTokenForm
    list_display = ["name", "prefix", "scope_list", "expires_at", "last_used_at", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "last_used_at", "created_at", "created_by"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    def has_view_permission(self, request, obj=None):
        return _is_admin(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return _is_admin(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return _is_admin(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _is_admin(request) and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        issuer = request_principal(request)
        data = form.cleaned_data
        try:
            if change:
                fields = ("scopes", "services", "teams", "expires_at", "is_active")
                changes = {k: data[k] for k in fields}
                tokens.update_token(ApiToken.objects.get(pk=obj.pk), changes, issuer=issuer)
                return
            issued = tokens.issue_token(
                data["name"],
                data["scopes"],
                services=data["services"],
                teams=data["teams"],
                expires_at=data["expires_at"],
                issuer=issuer,
                created_by=request.user,
            )
        except Forbidden as exc:  # more than the issuer holds: nothing was saved
            raise PermissionDenied(exc.message) from None
        obj.pk = issued.token.pk
        messages.warning(
            request,
            f"The secret of token {obj.name!r} is {issued.secret} -- copy it now, it is not "
            "stored and will not be shown again.",
        )

    def delete_model(self, request, obj):
        audit.record(request_principal(request), "token.delete", "token", obj.name)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        delete_each(self, request, queryset)  # each audited, as on its own page


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    deletable = False  # the audit log is kept whole
    read_scope = Scope.CHANGES_READ  # operators and admins, as on /audit/ and GET /api/audit
    list_display = ["created_at", "actor", "action", "target_type", "target", "client_ip"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor", "target", "request_id"]
    date_hierarchy = "created_at"


@admin.register(SecurityEvent)
class SecurityEventAdmin(RecordAdmin):
    """Admins read them here (their role alone has the permission; audit:read too). A
    refusal repeated within a minute is one row: ``count`` times, from ``at`` to ``last_at``."""

    deletable = False  # append-only
    read_scope = Scope.AUDIT_READ
    list_display = ["at", "kind", "who", "client_ip", "operation", "outcome", "count", "last_at"]
    list_filter = ["kind", "outcome"]
    search_fields = ["who", "operation", "request_id", "client_ip"]
    date_hierarchy = "at"


@admin.register(Heartbeat)
class HeartbeatAdmin(RecordAdmin):
    list_display = ["name", "seen_at"]

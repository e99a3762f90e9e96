from django import forms
from django.contrib import admin, messages

from portal import tokens
from portal.admin_base import RecordAdmin
from portal.models import ApiToken, AuditEntry, Heartbeat, Scope


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    services = forms.CharField(
        required=False,
        help_text="Comma-separated service names this token is limited to; empty for all.",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "services", "expires_at", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["services"] = ", ".join(self.instance.services)

    def clean_services(self) -> list[str]:
        raw = self.cleaned_data["services"]
        return sorted({name.strip() for name in raw.split(",") if name.strip()})


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "prefix", "scope_list", "expires_at", "last_used_at", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "last_used_at", "created_at", "created_by"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        secret = tokens.new_secret()
        obj.prefix = secret[: len(tokens.TOKEN_PREFIX) + 6]
        obj.secret_hash = tokens.hash_secret(secret)
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        messages.warning(
            request,
            f"The secret of token {obj.name!r} is {secret} -- copy it now, it is not stored "
            "and will not be shown again.",
        )


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    deletable = False  # the audit log is kept whole
    list_display = ["created_at", "actor", "action", "target_type", "target", "client_ip"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor", "target", "request_id"]
    date_hierarchy = "created_at"


@admin.register(Heartbeat)
class HeartbeatAdmin(RecordAdmin):
    list_display = ["name", "seen_at"]

"""Admin for the registry. Every save goes through services.registry, like the API, so the
admin gets the same validation, cycle refusal and audit trail."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from portal import audit
from portal.auth import user_principal
from portal.errors import PortalError
from services import lifecycle, registry
from services.graph import DependencyGraph, format_cycle
from services.models import (
    Dependency,
    LifecycleStatus,
    LifecycleTransition,
    Service,
    Tag,
    Team,
)
from services.schemas import DependencyIn, ServiceUpsertIn


def _cycle_error(service_name: str, dependencies: dict[str, str]) -> str | None:
    graph = DependencyGraph.load()
    graph.set_dependencies(service_name, dependencies)
    cycle = graph.find_cycle(start=[service_name])
    return f"dependency cycle: {format_cycle(cycle)}" if cycle else None


class DependencyInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        name = self.instance.name or (self.data.get("name") or "").strip()
        deps: dict[str, str] = {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("depends_on"):
                continue
            target = data["depends_on"].name
            if target == name:
                raise ValidationError("a service cannot depend on itself")
            deps[target] = data.get("kind") or "hard"
        if name and (error := _cycle_error(name, deps)):
            raise ValidationError(error)
        self.dependencies = deps


class DependencyInline(admin.TabularInline):
    model = Dependency
    fk_name = "service"
    formset = DependencyInlineFormSet
    autocomplete_fields = ["depends_on"]
    fields = ["depends_on", "kind"]
    extra = 1


class TransitionInline(admin.TabularInline):
    model = LifecycleTransition
    fields = ["created_at", "from_status", "to_status", "reason", "actor"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "display_name", "contact", "created_at"]
    search_fields = ["name", "display_name", "contact"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record(
            user_principal(request.user),
            "team.update" if change else "team.create",
            "team",
            obj.name,
            {f: form.cleaned_data[f] for f in form.changed_data},
        )


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.action(description="Mark selected services running")
def mark_running(modeladmin, request, queryset):
    _transition_all(request, queryset, LifecycleStatus.RUNNING)


@admin.action(description="Mark selected services stopped")
def mark_stopped(modeladmin, request, queryset):
    _transition_all(request, queryset, LifecycleStatus.STOPPED)


def _transition_all(request, queryset, to: str) -> None:
    actor = user_principal(request.user)
    for name in queryset.values_list("name", flat=True):
        try:
            lifecycle.transition(name, to, "set in the admin", actor)
        except PortalError as exc:
            messages.error(request, exc.message)


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "display_name",
        "team",
        "lifecycle_status",
        "is_critical",
        "deployed_version",
        "updated_at",
    ]
    list_filter = ["lifecycle_status", "is_critical", "team", "tags"]
    search_fields = ["name", "display_name", "description"]
    list_select_related = ["team"]
    filter_horizontal = ["tags"]
    readonly_fields = ["lifecycle_status", "lifecycle_changed_at", "created_at", "updated_at"]
    inlines = [DependencyInline, TransitionInline]
    actions = [mark_running, mark_stopped]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "display_name",
                    "team",
                    "description",
                    "tags",
                    "is_critical",
                    "deployed_version",
                    "config_validation_level",
                ]
            },
        ),
        ("Links", {"fields": ["repository_url", "docs_url", "runbook_url"]}),
        (
            "Lifecycle",
            {"fields": ["lifecycle_status", "lifecycle_changed_at", "created_at", "updated_at"]},
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        # Renaming would break every pipeline and token that names the service.
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        """Nothing here: save_related writes the service and its relations in one go."""

    def save_related(self, request, form, formsets, change):
        """Write the service, its tags and dependencies through the registry in one go
        (transitions are read-only)."""
        for formset in formsets:  # the admin's change message looks for these
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        data = form.cleaned_data
        dep_formset = next(f for f in formsets if isinstance(f, DependencyInlineFormSet))
        spec = ServiceUpsertIn(
            team=data["team"].name,
            tags=[t.name for t in data["tags"]],
            dependencies=[
                DependencyIn(service=n, kind=k) for n, k in sorted(dep_formset.dependencies.items())
            ],
            **{f: data[f] for f in registry.SCALAR_FIELDS},
        )
        name = form.instance.name
        try:
            registry.upsert_service(name, spec, user_principal(request.user))
        except PortalError as exc:  # only a race with another writer gets here
            messages.error(request, f"Not saved: {exc.message}")
        form.instance.pk = Service.objects.filter(name=name).values_list("pk", flat=True).first()

    def delete_model(self, request, obj):
        registry.delete_service(obj.name, user_principal(request.user))

    def delete_queryset(self, request, queryset):
        actor = user_principal(request.user)
        for name in queryset.values_list("name", flat=True):
            try:
                registry.delete_service(name, actor)
            except PortalError as exc:
                messages.error(request, exc.message)


class DependencyForm(forms.ModelForm):
    class Meta:
        model = Dependency
        fields = ["service", "depends_on", "kind"]

    def clean(self):
        data = super().clean()
        service, depends_on = data.get("service"), data.get("depends_on")
        if service and depends_on:
            if service == depends_on:
                raise ValidationError("a service cannot depend on itself")
            deps = registry.current_dependencies(service.name)
            deps[depends_on.name] = data.get("kind") or "hard"
            if error := _cycle_error(service.name, deps):
                raise ValidationError(error)
        return data


@admin.register(Dependency)
class DependencyAdmin(admin.ModelAdmin):
    form = DependencyForm
    list_display = ["service", "depends_on", "kind", "created_at"]
    list_filter = ["kind", "service__team"]
    search_fields = ["service__name", "depends_on__name"]
    list_select_related = ["service", "depends_on"]
    autocomplete_fields = ["service", "depends_on"]

    def save_model(self, request, obj, form, change):
        actor = user_principal(request.user)
        if change and {"service", "depends_on"} & set(form.changed_data):
            old = Dependency.objects.select_related("service", "depends_on").get(pk=obj.pk)
            registry.remove_dependency(old.service.name, old.depends_on.name, actor)
        registry.set_dependency(obj.service.name, obj.depends_on.name, obj.kind, actor)
        obj.pk = Dependency.objects.get(service=obj.service, depends_on=obj.depends_on).pk

    def delete_model(self, request, obj):
        registry.remove_dependency(
            obj.service.name, obj.depends_on.name, user_principal(request.user)
        )

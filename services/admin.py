"""Admin for the registry. Every save goes through services.registry, like the API, so the
admin gets the same validation, cycle refusal and audit trail."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from portal import audit
from portal.admin_base import RecordAdmin, ScopedAdmin
from portal.auth import Role, request_principal, role_of
from portal.errors import Conflict, InvalidInput, PortalError
from portal.models import Scope
from services import configs, lifecycle, registry
from services.config_forms import ConfigForm
from services.graph import DependencyGraph, format_cycle
from services.models import (
    ConfigSchema,
    ConfigVersion,
    Dependency,
    Deployment,
    LifecycleStatus,
    LifecycleTransition,
    Service,
    Tag,
    Team,
)
from services.schemas import DependencyIn, ServiceUpsertIn, TeamIn

READ, WRITE = Scope.REGISTRY_READ, Scope.REGISTRY_WRITE


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
class TeamAdmin(ScopedAdmin):
    read_scope, write_scope = READ, WRITE
    list_display = ["name", "display_name", "contact", "created_at"]
    search_fields = ["name", "display_name", "contact"]
    filter_horizontal = ["members"]

    def owns(self, request, obj) -> bool:
        return obj is None or request_principal(request).may_change_team(obj.name)

    def ownership_refusal(self, request, obj) -> str:
        return request_principal(request).ownership_denied(team=obj.name).message

    def get_readonly_fields(self, request, obj=None):
        # Teams are named in manifests and tokens: a rename would be a new team.
        return ["name"] if obj else []

    def get_exclude(self, request, obj=None):
        """Who belongs to a team decides what they may change: admins decide it."""
        return [] if role_of(request.user) == Role.ADMIN else ["members"]

    def save_related(self, request, form, formsets, change):
        """Membership changes are audited, each a row naming who joined or left."""
        if "members" not in form.cleaned_data:
            return super().save_related(request, form, formsets, change)
        team = form.instance
        before = set(team.members.values_list("username", flat=True))
        super().save_related(request, form, formsets, change)
        after = set(team.members.values_list("username", flat=True))
        if before != after:
            audit.record(
                request_principal(request),
                "team.members",
                "team",
                team.name,
                {"joined": sorted(after - before), "left": sorted(before - after)},
            )

    def save_model(self, request, obj, form, change):
        """Through the registry's write path, like the API's team upsert (audited there)."""
        team = TeamIn(name=obj.name, **{f: getattr(obj, f) for f in registry.TEAM_FIELDS})
        registry.apply_manifest(registry.manifest_of(teams=[team]), request_principal(request))
        obj.pk = Team.objects.get(name=obj.name).pk

    def delete_model(self, request, obj):
        registry.delete_team(obj.name, request_principal(request))

    def delete_queryset(self, request, queryset):
        actor = request_principal(request)
        for name in queryset.values_list("name", flat=True):
            try:
                registry.delete_team(name, actor)
            except PortalError as exc:
                messages.error(request, exc.message)


@admin.register(Tag)
class TagAdmin(RecordAdmin):
    """Tags come and go with the services that carry them (set through the registry, in a
    service's form or a manifest); listed here to be found, not edited apart."""

    read_scope = READ
    deletable = False
    search_fields = ["name"]


@admin.action(description="Mark selected services running", permissions=["change"])
def mark_running(modeladmin, request, queryset):
    _transition_all(request, queryset, LifecycleStatus.RUNNING)


@admin.action(description="Mark selected services stopped", permissions=["change"])
def mark_stopped(modeladmin, request, queryset):
    _transition_all(request, queryset, LifecycleStatus.STOPPED)


def _transition_all(request, queryset, to: str) -> None:
    actor = request_principal(request)
    for name in queryset.values_list("name", flat=True):
        try:
            lifecycle.transition(name, to, "set in the admin", actor)
        except PortalError as exc:
            messages.error(request, exc.message)


@admin.register(Service)
class ServiceAdmin(ScopedAdmin):
    read_scope, write_scope = READ, WRITE

    def service_of(self, obj) -> str | None:
        return obj.name

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
    readonly_fields = [
        "configuration",
        "lifecycle_status",
        "lifecycle_changed_at",
        "created_at",
        "updated_at",
    ]
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
                    "slo_target",
                    "deployed_version",
                    "config_validation_level",
                    "deploy_bake_seconds",
                    "on_failed_verification",
                ]
            },
        ),
        ("Links", {"fields": ["repository_url", "docs_url", "runbook_url"]}),
        (
            "Lifecycle",
            {
                "fields": [
                    "configuration",
                    "lifecycle_status",
                    "lifecycle_changed_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]

    def get_urls(self):
        view = self.admin_site.admin_view(
            lambda request, object_id: config_view(self, request, object_id)
        )
        return [
            path("<path:object_id>/config/", view, name="services_service_config"),
            *super().get_urls(),
        ]

    @admin.display(description="configuration")
    def configuration(self, obj):
        if not obj.pk:
            return "-"
        current = configs.current_version(obj)
        label = f"version {current.version}" if current else "none yet"
        url = reverse("admin:services_service_config", args=[obj.pk])
        return format_html('{} — <a href="{}">edit configuration</a>', label, url)

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
            registry.upsert_service(name, spec, request_principal(request))
        except PortalError as exc:  # only a race with another writer gets here
            messages.error(request, f"Not saved: {exc.message}")
        form.instance.pk = Service.objects.filter(name=name).values_list("pk", flat=True).first()

    def get_deleted_objects(self, objs, request):
        """What goes with a service is the registry's to delete (its history, checks and
        derived rows, which no one may delete by hand), so no permission is asked for them;
        a service others depend on is protected, naming them, as the API's 409 does."""
        deleted, counts, _perms, protected = super().get_deleted_objects(objs, request)
        for service in objs:
            needed_by = Dependency.objects.filter(depends_on=service).order_by("service__name")
            protected += [
                f"{service.name} is needed by {d.service.name} ({d.kind}); remove that "
                "dependency first"
                for d in needed_by.select_related("service")
            ]
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        registry.delete_service(obj.name, request_principal(request))

    def delete_queryset(self, request, queryset):
        actor = request_principal(request)
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
class DependencyAdmin(ScopedAdmin):
    read_scope, write_scope = READ, WRITE
    form = DependencyForm
    list_display = ["service", "depends_on", "kind", "created_at"]
    list_filter = ["kind", "service__team"]
    search_fields = ["service__name", "depends_on__name"]
    list_select_related = ["service", "depends_on"]
    autocomplete_fields = ["service", "depends_on"]

    def save_model(self, request, obj, form, change):
        actor = request_principal(request)
        if change and {"service", "depends_on"} & set(form.changed_data):
            old = Dependency.objects.select_related("service", "depends_on").get(pk=obj.pk)
            registry.remove_dependency(old.service.name, old.depends_on.name, actor)
        registry.set_dependency(obj.service.name, obj.depends_on.name, obj.kind, actor)
        obj.pk = Dependency.objects.get(service=obj.service, depends_on=obj.depends_on).pk

    def delete_model(self, request, obj):
        registry.remove_dependency(
            obj.service.name, obj.depends_on.name, request_principal(request)
        )


# --- Configuration ---------------------------------------------------------------------------


def config_view(model_admin, request, object_id):
    """Edit a service's configuration through a form generated from its schema. Seeing it
    needs ``config:read``; saving needs ``config:write`` and the right to change the service,
    as through the API (a viewer sees the form read-only)."""
    service = get_object_or_404(Service, pk=object_id)
    principal = request_principal(request)
    if not (
        model_admin.has_view_permission(request, service) and principal.has_scope(Scope.CONFIG_READ)
    ):
        raise PermissionDenied
    read_only_because = _config_refusal(model_admin, request, service)
    may_write = read_only_because is None
    if request.method == "POST" and not may_write:
        raise PermissionDenied(read_only_because)
    schema = _opened_schema(service, request.POST.get("schema_version"))
    current = configs.current_version(service)
    opened = _opened_version(service, request.POST.get("base_version"), current)
    form = ConfigForm(
        request.POST or None,
        schema=schema.schema if schema else None,
        current=configs.masked(opened) if opened else {},
        base_version=opened.version if opened else 0,
        schema_version=schema.version if schema else 0,
    )
    if not may_write:
        for field in form.fields.values():
            field.disabled = True
    if request.method == "POST" and form.is_valid() and not form.changed_paths():
        messages.info(request, "Nothing changed: no field was edited, nothing was stored.")
        return redirect("admin:services_service_config", object_id=service.pk)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = configs.publish(
                service.name,
                form.values(),
                form.cleaned_data["base_version"],
                principal,
                comment=form.cleaned_data["comment"],
            )
        except InvalidInput as exc:
            form.add_publish_errors(exc.fields)
        except Conflict as exc:
            form.add_error(None, exc.message)
        else:
            if not outcome.stored:
                messages.info(request, "Nothing changed: the configuration is the same.")
            elif outcome.validation.valid is False:
                messages.warning(
                    request,
                    f"Saved version {outcome.version.version}, which does "
                    f"not match the schema: {outcome.validation.issues}",
                )
            else:
                messages.success(request, f"Saved configuration version {outcome.version.version}.")
            return redirect("admin:services_service_config", object_id=service.pk)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Service._meta,
        "original": service,
        "title": f"Configuration of {service.name}",
        "form": form,
        "schema": schema,
        "current": current,
        "level": configs.level_for(service),
        "may_write": may_write,
        "read_only_because": read_only_because,
        "versions": service.config_versions.order_by("-version")[:20],
    }
    return TemplateResponse(request, "admin/services/service/config.html", context)


def _config_refusal(model_admin, request, service) -> str | None:
    """Why this person may not save the configuration (None: they may), as the API says it."""
    principal = request_principal(request)
    if not principal.has_scope(Scope.CONFIG_WRITE):
        return f"{principal} lacks the scope '{Scope.CONFIG_WRITE}' (the operator or admin role)"
    if not model_admin.has_change_permission(request, service):
        return model_admin.refusal(request, service, "change")
    return None


def _opened_schema(service: Service, posted: str | None):
    """The schema a posted form was drawn from (its fields are read as they were shown, so
    a schema stored while the form was open changes no value nobody touched; publishing
    then validates against the current one), or the current one."""
    if posted is None or not posted.isdigit():
        return configs.current_schema(service)
    if int(posted) == 0:
        return None
    return service.config_schemas.filter(version=int(posted)).first() or configs.current_schema(
        service
    )


def _opened_version(service: Service, posted: str | None, current):
    """The version a posted form was opened on (its changes apply to that one; publishing
    then refuses it if it is no longer current), or the current one."""
    if posted is None or not posted.isdigit() or current is None:
        return current
    if int(posted) == current.version:
        return current
    return service.config_versions.filter(version=int(posted)).first() or current


class ConfigVersionAdmin(RecordAdmin):
    deletable = False  # versions are immutable history
    read_scope = Scope.CONFIG_READ
    list_display = [
        "service",
        "version",
        "valid",
        "validation_level",
        "author",
        "comment",
        "created_at",
    ]
    list_filter = ["valid", "validation_level", "service__team"]
    search_fields = ["service__name", "author", "comment", "content_hash"]
    list_select_related = ["service"]
    actions = ["roll_back_to_this_version"]
    fields = [
        "service",
        "version",
        "masked_values",
        "diff_with_previous",
        "valid",
        "issues",
        "validation_level",
        "schema",
        "content_hash",
        "author",
        "comment",
        "rolled_back_from",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="values (secrets masked)")
    def masked_values(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(configs.masked(obj), indent=2))

    @admin.display(description="changes from the previous version")
    def diff_with_previous(self, obj):
        if obj.version == 1:
            return "first version"
        changes = configs.diff(obj.service.name, obj.version - 1, obj.version)
        lines = [
            f"+ {c['path']}" + ("" if c.get("secret") else f" = {c['value']!r}")
            for c in changes["added"]
        ]
        lines += [f"- {c['path']}" for c in changes["removed"]]
        lines += [
            f"~ {c['path']}"
            + (" (secret)" if c.get("secret") else f": {c['old']!r} -> {c['new']!r}")
            for c in changes["changed"]
        ]
        return format_html("<pre>{}</pre>", "\n".join(lines) or "no change")

    def has_rollback_permission(self, request) -> bool:
        """Rolling back writes a new version: ``config:write``, as through the API."""
        return self.holds(request, Scope.CONFIG_WRITE) and request.user.has_perm(
            "services.change_service"
        )

    @admin.action(
        description="Roll back to the selected version (makes a new version)",
        permissions=["rollback"],
    )
    def roll_back_to_this_version(self, request, queryset):
        if queryset.count() != 1:
            messages.error(request, "Select exactly one version to roll back to.")
            return
        version = queryset.select_related("service").get()
        try:
            outcome = configs.rollback(
                version.service.name, version.version, request_principal(request)
            )
        except PortalError as exc:
            messages.error(request, f"Not rolled back: {exc.message} {exc.fields or ''}")
            return
        if outcome.stored:
            messages.success(
                request,
                f"{version.service.name}: version "
                f"{outcome.version.version} now equals version {version.version}.",
            )
        else:
            messages.info(request, "Nothing to do: that is already the current content.")


admin.site.register(ConfigVersion, ConfigVersionAdmin)


@admin.register(ConfigSchema)
class ConfigSchemaAdmin(RecordAdmin):
    deletable = False
    read_scope = Scope.CONFIG_READ
    list_display = ["service", "version", "source_format", "author", "comment", "created_at"]
    list_filter = ["source_format"]
    search_fields = ["service__name", "author"]
    list_select_related = ["service"]


@admin.register(Deployment)
class DeploymentAdmin(RecordAdmin):
    read_scope = READ
    list_display = [
        "service",
        "version",
        "status",
        "verification_state",
        "config_version",
        "actor",
        "created_at",
    ]
    list_filter = ["status", "verification_state", "service__team"]
    search_fields = ["service__name", "version", "actor"]
    list_select_related = ["service"]
    date_hierarchy = "created_at"

"""Shared admin behaviour."""

from contextlib import contextmanager

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from portal import audit
from portal.auth import request_principal, role_of
from portal.errors import PortalError


class ScopedAdmin(admin.ModelAdmin):
    """An admin page allows what the person's model permissions (their role group's, see
    portal.roles) allow *and* what their API scopes allow: the admin is another way to call
    the same domain functions, so it never lets a person do what the API would refuse them.
    ``read_scope`` guards viewing, ``write_scope`` adding, changing and deleting; an object
    of a service another team owns is read-only to an operator, and the forms offer only
    their own teams' services (and teams)."""

    read_scope: str | None = None
    write_scope: str | None = None

    def holds(self, request, scope: str | None) -> bool:
        return scope is None or request_principal(request).has_scope(scope)

    def service_of(self, obj) -> str | None:
        """The name of the service whose team owns ``obj``, if one does."""
        service = getattr(obj, "service", None)
        return getattr(service, "name", None)

    def owns(self, request, obj) -> bool:
        name = None if obj is None else self.service_of(obj)
        return name is None or request_principal(request).may_change(name)

    def ownership_refusal(self, request, obj) -> str:
        return request_principal(request).ownership_denied(self.service_of(obj)).message

    def refusal(self, request, obj, action: str) -> str:
        """Why ``action`` (view, add, change, delete) on ``obj`` is refused, in the API's
        words: the role's permission, the scope, or the team that owns it."""
        opts, principal = self.model._meta, request_principal(request)
        if not request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"):
            role = role_of(request.user).value
            return f"{principal} (role {role}) may not {action} {opts.verbose_name_plural}"
        scope = self.read_scope if action == "view" else self.write_scope
        if not self.holds(request, scope):
            return f"{principal} lacks the scope '{scope}'"
        if action != "view" and not self.owns(request, obj):
            return self.ownership_refusal(request, obj)
        return f"{principal} may not {action} this {opts.verbose_name}"

    @contextmanager
    def saying_why(self, request, object_id, action: str):
        """Django's own refusals carry no reason; the portal's say which one applies."""
        try:
            yield
        except PermissionDenied as exc:
            if str(exc):
                raise
            obj = self.get_object(request, object_id) if object_id else None
            if action == "change" and request.method != "POST":
                action = "view"
            raise PermissionDenied(self.refusal(request, obj, action)) from None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with self.saying_why(request, object_id, "change" if object_id else "add"):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        with self.saying_why(request, object_id, "delete"):
            return super().delete_view(request, object_id, extra_context)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        principal = request_principal(request)
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "service" and principal.owned_services is not None:
            field.queryset = field.queryset.filter(name__in=principal.owned_services)
        if db_field.name == "team" and principal.teams is not None:
            field.queryset = field.queryset.filter(name__in=principal.teams)
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        principal = request_principal(request)
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "services" and principal.owned_services is not None:
            field.queryset = field.queryset.filter(name__in=principal.owned_services)
        return field

    def delete_model(self, request, obj):
        """A deletion is a write, and every write is audited (a model whose deletion has a
        domain function of its own overrides this with it, which audits)."""
        name, target = self.model._meta.model_name, str(obj)
        # Audited first, naming the service whose team owned it while it still exists.
        audit.record(
            request_principal(request), f"{name}.delete", name, target, service=self.service_of(obj)
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        """ "Delete selected" deletes each as its own page does (``delete_model``): Django's
        default deletes the queryset at once, past the domain's delete and its audit row."""
        delete_each(self, request, queryset)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.holds(request, self.read_scope)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.holds(request, self.write_scope)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and self.holds(request, self.write_scope) and self.owns(request, obj)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and self.holds(request, self.write_scope) and self.owns(request, obj)


def delete_each(model_admin, request, queryset) -> None:
    """Delete the selected objects one by one through ``delete_model``; what the domain
    refuses is said and the rest go on."""
    for obj in queryset:
        try:
            model_admin.delete_model(request, obj)
        except PortalError as exc:
            messages.error(request, exc.message)


class RecordAdmin(ScopedAdmin):
    """For rows written only by the portal itself (history, audit, derived state): people
    may read them, never add or edit them. ``deletable`` allows clean-up by hand."""

    deletable = True

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)

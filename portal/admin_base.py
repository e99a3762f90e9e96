"""Shared admin behaviour."""

from django.contrib import admin

from portal.auth import request_principal


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

"""Shared admin behaviour."""

from django.contrib import admin

from portal.auth import request_principal


class ScopedAdmin(admin.ModelAdmin):
    """An admin page allows what the person's model permissions (their role group's, see
    portal.roles) allow *and* what their API scopes allow: the admin is another way to call
    the same domain functions, so it never lets a person do what the API would refuse them.
    ``read_scope`` guards viewing, ``write_scope`` adding, changing and deleting."""

    read_scope: str | None = None
    write_scope: str | None = None

    def holds(self, request, scope: str | None) -> bool:
        return scope is None or request_principal(request).has_scope(scope)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.holds(request, self.read_scope)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.holds(request, self.write_scope)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and self.holds(request, self.write_scope)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and self.holds(request, self.write_scope)


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

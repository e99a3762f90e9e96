"""Shared admin behaviour."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """For rows written only by the portal itself (history, audit, derived state): people
    may read them, never add or edit them. ``deletable`` allows clean-up by hand."""

    deletable = True

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)

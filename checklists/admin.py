"""Routines are edited by admins (their role alone has the permissions); runs and ticks are
records, read-only here (ticked on /maintenance/)."""

from django.contrib import admin

from checklists.models import ChecklistItem, ChecklistRun, ChecklistTemplate, Tick
from portal import audit
from portal.admin_base import RecordAdmin, ScopedAdmin
from portal.auth import request_principal


class ItemInline(admin.TabularInline):
    model = ChecklistItem
    fields = ["position", "section", "text", "evidence"]
    extra = 1


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(ScopedAdmin):
    list_display = ["title", "period", "item_count"]
    inlines = [ItemInline]

    @admin.display(description="items")
    def item_count(self, obj):
        return obj.items.count()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record(
            request_principal(request),
            "checklist.routine.change" if change else "checklist.routine.create",
            "checklist",
            obj.name,
            {"title": obj.title, "period": obj.period},
        )

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.new_objects or formset.changed_objects or formset.deleted_objects:
            audit.record(
                request_principal(request),
                "checklist.routine.items",
                "checklist",
                form.instance.name,
                {
                    "added": [i.text for i in formset.new_objects],
                    "changed": [i.text for i, _ in formset.changed_objects],
                    "removed": [i.text for i in formset.deleted_objects],
                },
            )


class TickInline(admin.TabularInline):
    model = Tick
    fields = ["item", "done", "note", "by", "at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChecklistRun)
class ChecklistRunAdmin(RecordAdmin):
    deletable = False  # the record of who did the routine
    list_display = ["template", "service", "label", "started_by", "signed_off_by", "signed_off_at"]
    list_filter = ["template"]
    search_fields = ["service__name", "label"]
    list_select_related = ["template", "service"]
    inlines = [TickInline]

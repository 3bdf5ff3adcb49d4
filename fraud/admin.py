from django.contrib import admin

from fraud.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "user", "risk_score", "completion_id")
    list_filter = ("kind",)
    search_fields = ("user__username", "completion_id")
    readonly_fields = ("kind", "user", "completion_id", "risk_score", "payload", "created_at")

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

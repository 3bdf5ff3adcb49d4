from django.contrib import admin

from actions.models import ActionType, Completion


@admin.register(ActionType)
class ActionTypeAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "reward",
        "cooldown_seconds",
        "min_duration_seconds",
        "daily_cap",
        "active",
    )
    list_filter = ("active",)
    search_fields = ("id", "name")


@admin.register(Completion)
class CompletionAdmin(admin.ModelAdmin):
    """Completions are written only by the complete endpoint: read-only here."""

    list_display = ("created_at", "user", "action", "delta", "flagged", "risk_score", "ip")
    list_filter = ("flagged", "action")
    search_fields = ("user__username", "ip", "nonce")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

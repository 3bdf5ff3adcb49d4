from django.contrib import admin

from actions.models import ActionType


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

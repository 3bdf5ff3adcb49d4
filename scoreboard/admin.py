from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from scoreboard.models import ScoreEntry


@admin.register(ScoreEntry)
class ScoreEntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # not subscriptable at run time
    """The ledger is append-only: staff read it here and reverse through fraud review."""

    list_display = ("created_at", "user", "delta", "score_after", "reason", "action_id", "ip")
    list_filter = ("reason",)
    search_fields = ("user__username", "action_id", "ip")
    raw_id_fields = ("user", "reverses")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.authentication import request_user
from actions.action_types import action_types_changed
from actions.models import ActionType, Completion
from actions.services import completion_reverse
from fraud.geo import place_of


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

    # Every process must see a change at once (a deactivation stops an exploit).
    def save_model(self, request: HttpRequest, obj: ActionType, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        action_types_changed()

    def delete_model(self, request: HttpRequest, obj: ActionType) -> None:
        super().delete_model(request, obj)
        action_types_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ActionType]) -> None:
        super().delete_queryset(request, queryset)
        action_types_changed()


@admin.register(Completion)
class CompletionAdmin(admin.ModelAdmin):
    """Completions are written only by the complete endpoint: read-only here. Staff on the
    review desk may reverse chosen ones (a compensating ledger entry, audited)."""

    list_display = (
        "created_at",
        "user",
        "action",
        "delta",
        "flagged",
        "risk_score",
        "reversed",
        "ip",
        "where",
    )
    list_filter = ("flagged", "action")
    search_fields = ("user__username", "ip", "nonce")
    date_hierarchy = "created_at"
    list_select_related = ("user", "action", "score_entry__reversed_by")
    actions = ("reverse_selected",)

    @admin.display(description="where")
    def where(self, completion: Completion) -> str:
        """The address's city and country in today's GeoIP database (the fraud log keeps
        where the database put it when it was flagged)."""
        place = place_of(completion.ip)
        return place.label() if place is not None else "-"

    @admin.display(boolean=True)
    def reversed(self, completion: Completion) -> bool:
        return hasattr(completion.score_entry, "reversed_by")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The review desk links to one user's completions.
        return lookup == "user__id__exact" or super().lookup_allowed(lookup, value, request)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm("fraud.change_fraudlog")

    @admin.action(
        description="Reverse: take the points back (compensating entry)", permissions=["review"]
    )
    def reverse_selected(self, request: HttpRequest, queryset: QuerySet[Completion]) -> None:
        done = sum(
            completion_reverse(completion=completion, admin=request_user(request))
            for completion in queryset.select_related("score_entry")
        )
        skipped = queryset.count() - done
        self.message_user(
            request,
            f"{done} completions reversed"
            + (f"; {skipped} had been reversed before." if skipped else "."),
            messages.SUCCESS,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

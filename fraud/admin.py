"""The admins' review desk: fraud logs, users under review, and what staff may do.

Everything here is read-only; staff act only through the actions below, each a service
that audits the act with the admin's name. Audit events and fraud logs cannot be edited or
deleted.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from fraud.models import AuditEvent, FraudLog, ReviewUser, RiskProfile
from fraud.rules import RULES
from fraud.services import fraud_log_review, risk_profile_clear, user_set_banned


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing added, edited or deleted by hand; the actions are the only way to act."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        """Who may act on the desk: staff with the fraud app's review rights."""
        return request.user.is_active and request.user.has_perm("fraud.change_fraudlog")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "user", "actor", "risk_score", "completion_id")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__username", "completion_id")
    readonly_fields = (
        "kind",
        "user",
        "completion_id",
        "risk_score",
        "payload",
        "event_key",
        "created_at",
    )

    @admin.display(description="by")
    def actor(self, event: AuditEvent) -> str:
        return str(event.payload.get("actor", "")) if isinstance(event.payload, dict) else ""


def _details(log: FraudLog) -> dict[str, Any]:
    return log.details if isinstance(log.details, dict) else {}


def _place(found: Any) -> str:
    if not isinstance(found, dict):
        return ""
    return ", ".join(str(found[key]) for key in ("city", "country") if found.get(key))


def place_label(log: FraudLog) -> str:
    """The city and country the completion came from, as the GeoIP database put it."""
    return _place(_details(log).get("place")) or "-"


def travel_label(log: FraudLog) -> str:
    """The two places of an impossible travel and the speed it implies."""
    found = _details(log).get("evidence", {}).get("impossible_travel")
    if not isinstance(found, dict):
        return "-"
    minutes = (found.get("seconds") or 0) / 60
    return (
        f"{_place(found.get('from')) or '?'} ({found.get('from', {}).get('at', '')}) to "
        f"{_place(found.get('to')) or '?'} ({found.get('to', {}).get('at', '')}): "
        f"{found.get('distanceKm', 0):,} km in {minutes:,.1f} min, "
        f"at least {found.get('speedKmh', 0):,} km/h"
    )


class RuleFilter(admin.SimpleListFilter):
    title = "rule"
    parameter_name = "rule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name.replace("_", " ")) for name in RULES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[FraudLog]) -> QuerySet[FraudLog]:
        if self.value() in RULES:
            return queryset.filter(rules__has_key=self.value())
        return queryset


class RiskBandFilter(admin.SimpleListFilter):
    title = "risk"
    parameter_name = "risk"
    BANDS = {"low": (0.0, 0.5), "medium": (0.5, 0.7), "high": (0.7, 0.9), "critical": (0.9, 1.01)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (band, f"{band} ({lo:.1f}-{min(hi, 1):.1f})") for band, (lo, hi) in self.BANDS.items()
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[FraudLog]) -> QuerySet[FraudLog]:
        band = self.BANDS.get(self.value() or "")
        if band:
            return queryset.filter(risk_score__gte=band[0], risk_score__lt=band[1])
        return queryset


class ReviewedFilter(admin.SimpleListFilter):
    title = "reviewed"
    parameter_name = "reviewed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "not yet"), ("yes", "reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[FraudLog]) -> QuerySet[FraudLog]:
        if self.value() in ("yes", "no"):
            return queryset.filter(reviewed_at__isnull=self.value() == "no")
        return queryset


@admin.register(FraudLog)
class FraudLogAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_link",
        "event",
        "risk_score",
        "fired",
        "ip",
        "where",
        "reviewed_at",
        "reviewed_by",
        "outcome",
    )
    list_filter = (
        "event",
        RuleFilter,
        RiskBandFilter,
        ReviewedFilter,
        "outcome",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("user__username", "user__email", "ip")
    date_hierarchy = "created_at"
    list_select_related = ("user", "reviewed_by")
    readonly_fields = [*(field.name for field in FraudLog._meta.fields), "where", "travel"]
    actions = ("clear_selected", "confirm_selected")

    @admin.display(description="user", ordering="user__username")
    def user_link(self, log: FraudLog) -> str:
        url = reverse("admin:fraud_reviewuser_change", args=[log.user_id])
        return format_html('<a href="{}">{}</a>', url, log.user.get_username())

    @admin.display(description="rules that fired")
    def fired(self, log: FraudLog) -> str:
        ranked = sorted(log.rules.items(), key=lambda item: item[1], reverse=True)
        return ", ".join(f"{name} {value:.2f}" for name, value in ranked)

    @admin.display(description="where")
    def where(self, log: FraudLog) -> str:
        return place_label(log)

    @admin.display(description="impossible travel")
    def travel(self, log: FraudLog) -> str:
        return travel_label(log)

    def _review(self, request: HttpRequest, queryset: QuerySet[FraudLog], outcome: str) -> None:
        done = sum(
            fraud_log_review(log=log, admin=request.user, outcome=outcome)  # type: ignore[arg-type]
            for log in queryset
        )
        self.message_user(request, f"{done} fraud logs marked {outcome}.", messages.SUCCESS)

    @admin.action(description="Clear: mark reviewed, no fraud", permissions=["review"])
    def clear_selected(self, request: HttpRequest, queryset: QuerySet[FraudLog]) -> None:
        self._review(request, queryset, FraudLog.Outcome.CLEARED)

    @admin.action(description="Confirm: mark reviewed, fraud", permissions=["review"])
    def confirm_selected(self, request: HttpRequest, queryset: QuerySet[FraudLog]) -> None:
        self._review(request, queryset, FraudLog.Outcome.CONFIRMED)


class RiskProfileInline(admin.StackedInline):
    model = RiskProfile
    verbose_name = verbose_name_plural = "risk profile"
    can_delete = False
    readonly_fields = (
        "status",
        "rolling_risk",
        "flags_count",
        "blocks_count",
        "last_flagged_at",
        "last_reviewed_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FraudLogInline(admin.TabularInline):
    model = FraudLog
    fk_name = "user"
    verbose_name_plural = "risk history (newest first)"
    can_delete = False
    extra = 0
    ordering = ("-created_at",)
    fields = (
        "created_at",
        "event",
        "risk_score",
        "rules",
        "ip",
        "where",
        "completion_id",
        "outcome",
    )
    readonly_fields = fields

    @admin.display(description="where")
    def where(self, log: FraudLog) -> str:
        return place_label(log)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatusFilter(admin.SimpleListFilter):
    title = "risk status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(RiskProfile.Status.choices)

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ReviewUser]
    ) -> QuerySet[ReviewUser]:
        value = self.value()
        if value == RiskProfile.Status.CLEAR:
            return queryset.exclude(risk_profile__status__in=["watch", "under_review"])
        if value in RiskProfile.Status.values:
            return queryset.filter(risk_profile__status=value)
        return queryset


@admin.register(ReviewUser)
class ReviewUserAdmin(ReadOnlyAdmin):
    """Users as the review desk sees them: their standing, history, and the acts on them."""

    list_display = (
        "username",
        "status",
        "rolling_risk",
        "flags",
        "blocks",
        "score",
        "is_banned",
        "date_joined",
        "completions",
    )
    list_filter = (StatusFilter, "is_banned")
    search_fields = ("username", "email")
    ordering = ("-risk_profile__rolling_risk", "username")
    list_select_related = ("risk_profile",)
    fields = ("username", "email", "score", "is_banned", "banned_at", "date_joined", "completions")
    readonly_fields = fields
    inlines = (RiskProfileInline, FraudLogInline)
    actions = ("ban_selected", "unban_selected", "clear_selected")

    def _profile(self, user: ReviewUser) -> RiskProfile | None:
        return getattr(user, "risk_profile", None)

    @admin.display(description="status", ordering="risk_profile__status")
    def status(self, user: ReviewUser) -> str:
        profile = self._profile(user)
        return profile.get_status_display() if profile else "Clear"

    @admin.display(description="rolling risk", ordering="risk_profile__rolling_risk")
    def rolling_risk(self, user: ReviewUser) -> str:
        profile = self._profile(user)
        return f"{profile.rolling_risk:.2f}" if profile else "0.00"

    @admin.display(description="flags", ordering="risk_profile__flags_count")
    def flags(self, user: ReviewUser) -> int:
        profile = self._profile(user)
        return profile.flags_count if profile else 0

    @admin.display(description="blocks", ordering="risk_profile__blocks_count")
    def blocks(self, user: ReviewUser) -> int:
        profile = self._profile(user)
        return profile.blocks_count if profile else 0

    @admin.display(description="completions")
    def completions(self, user: ReviewUser) -> str:
        url = reverse("admin:actions_completion_changelist")
        return format_html(
            '<a href="{}?user__id__exact={}">completions (reverse chosen ones there)</a>',
            url,
            user.pk,
        )

    def _set_banned(
        self, request: HttpRequest, queryset: QuerySet[ReviewUser], *, banned: bool
    ) -> None:
        done = sum(
            user_set_banned(user=user, banned=banned, admin=request.user, reason="review desk")  # type: ignore[arg-type]
            for user in queryset
        )
        self.message_user(
            request, f"{done} users {'' if banned else 'un'}banned.", messages.SUCCESS
        )

    @admin.action(description="Ban: off the board, sessions ended", permissions=["review"])
    def ban_selected(self, request: HttpRequest, queryset: QuerySet[ReviewUser]) -> None:
        self._set_banned(request, queryset, banned=True)

    @admin.action(description="Unban: back on the board", permissions=["review"])
    def unban_selected(self, request: HttpRequest, queryset: QuerySet[ReviewUser]) -> None:
        self._set_banned(request, queryset, banned=False)

    @admin.action(description="Put back to clear (close their open logs)", permissions=["review"])
    def clear_selected(self, request: HttpRequest, queryset: QuerySet[ReviewUser]) -> None:
        for user in queryset:
            risk_profile_clear(user=user, admin=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"{queryset.count()} users put back to clear.", messages.SUCCESS)

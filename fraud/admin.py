"""The admins' review desk: fraud logs, users under review, and what staff may do.

Everything here is read-only; staff act only through the actions below, each a service
that audits the act with the admin's name. Audit events and fraud logs cannot be edited or
deleted.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.authentication import request_user
from fraud.acts import ACTS, ReverseForm
from fraud.admin_lists import (
    ReviewedFilter,
    RiskBandFilter,
    RuleFilter,
    StatusFilter,
    place_label,
    rules_html,
    travel_label,
)
from fraud.labels import percent, rule_bars
from fraud.models import AuditEvent, FraudLog, ReviewUser, RiskProfile
from fraud.selectors import desk_chart, desk_decisions, desk_summary, desk_timeline
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
    list_display = ("created_at", "kind", "user", "actor", "note", "risk", "completion_id")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__username", "completion_id")
    # The record as a reviewer reads it first; the payload as written, below, is the
    # evidence itself and stays exact.
    fields = (
        "kind",
        "user",
        "created_at",
        "actor",
        "note",
        "risk",
        "rules_fired",
        "completion_id",
        "payload",
        "event_key",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("fraud/desk.css",)}

    @admin.display(description="rules that fired")
    def rules_fired(self, event: AuditEvent) -> str:
        payload = event.payload if isinstance(event.payload, dict) else {}
        return rules_html(payload.get("rules"), payload.get("reasons"))

    @admin.display(description="by")
    def actor(self, event: AuditEvent) -> str:
        return str(event.payload.get("actor", "")) if isinstance(event.payload, dict) else ""

    @admin.display(description="note")
    def note(self, event: AuditEvent) -> str:
        return str(event.payload.get("note", "")) if isinstance(event.payload, dict) else ""

    @admin.display(description="risk", ordering="risk_score")
    def risk(self, event: AuditEvent) -> str:
        return f"{percent(event.risk_score)} %"


@admin.register(FraudLog)
class FraudLogAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_link",
        "event",
        "risk",
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
    fields = (
        "desk_link",
        "event",
        "created_at",
        "risk",
        "rules_fired",
        "ip",
        "user_agent",
        "where",
        "travel",
        "completion_id",
        "outcome",
        "reviewed_by",
        "reviewed_at",
        "alerted_at",
    )
    readonly_fields = fields
    actions = ("clear_selected", "confirm_selected")

    class Media:
        css = {"all": ("fraud/desk.css",)}

    @admin.display(description="user on the review desk")
    def desk_link(self, log: FraudLog) -> str:
        url = reverse("admin:fraud_reviewuser_change", args=[log.user_id])
        return format_html('<a href="{}">{} on the review desk</a>', url, log.user.get_username())

    @admin.display(description="risk", ordering="risk_score")
    def risk(self, log: FraudLog) -> str:
        return f"{percent(log.risk_score)} %"

    @admin.display(description="rules that fired")
    def rules_fired(self, log: FraudLog) -> str:
        return rules_html(log.rules, log.reasons)

    @admin.display(description="user", ordering="user__username")
    def user_link(self, log: FraudLog) -> str:
        url = reverse("admin:fraud_reviewuser_change", args=[log.user_id])
        return format_html('<a href="{}">{}</a>', url, log.user.get_username())

    @admin.display(description="rules that fired")
    def fired(self, log: FraudLog) -> str:
        return ", ".join(f"{bar.label} {bar.percent} %" for bar in rule_bars(log.rules, {}))

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


@admin.register(ReviewUser)
class ReviewUserAdmin(ReadOnlyAdmin):
    """Users as the review desk sees them: why they are here in words, their completions
    beside an ordinary player's pace, and the acts on them (each confirmed, with a note
    for the audit record)."""

    change_form_template = "admin/fraud/reviewuser/change_form.html"
    change_list_template = "admin/fraud/reviewuser/change_list.html"
    list_display = (
        "username",
        "status",
        "rolling_risk",
        "flags",
        "blocks",
        "last_flagged",
        "score",
        "is_banned",
        "date_joined",
    )
    list_filter = (StatusFilter, "is_banned")
    search_fields = ("username", "email")
    ordering = ("-risk_profile__rolling_risk", "username")
    list_select_related = ("risk_profile",)
    # Display methods, not the model's fields: a read-only page shows no form help text.
    fields = ("name", "email_address", "points", "banned", "joined", "completions")
    readonly_fields = fields
    actions = ("ban_selected", "unban_selected", "clear_selected")

    class Media:
        css = {"all": ("fraud/desk.css",)}

    def _profile(self, user: ReviewUser) -> RiskProfile | None:
        return getattr(user, "risk_profile", None)

    @admin.display(description="username")
    def name(self, user: ReviewUser) -> str:
        return user.get_username()

    @admin.display(description="email address")
    def email_address(self, user: ReviewUser) -> str:
        return user.email

    @admin.display(description="points")
    def points(self, user: ReviewUser) -> str:
        return f"{user.score:,}"

    @admin.display(description="banned")
    def banned(self, user: ReviewUser) -> str:
        return f"since {user.banned_at:%Y-%m-%d %H:%M:%S}" if user.banned_at else "no"

    @admin.display(description="joined")
    def joined(self, user: ReviewUser) -> str:
        return f"{user.date_joined:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="status", ordering="risk_profile__status")
    def status(self, user: ReviewUser) -> str:
        profile = self._profile(user)
        return profile.get_status_display() if profile else "Clear"

    @admin.display(description="rolling risk", ordering="risk_profile__rolling_risk")
    def rolling_risk(self, user: ReviewUser) -> str:
        profile = self._profile(user)
        return f"{percent(profile.rolling_risk) if profile else 0} %"

    @admin.display(description="flags", ordering="risk_profile__flags_count")
    def flags(self, user: ReviewUser) -> int:
        profile = self._profile(user)
        return profile.flags_count if profile else 0

    @admin.display(description="blocks", ordering="risk_profile__blocks_count")
    def blocks(self, user: ReviewUser) -> int:
        profile = self._profile(user)
        return profile.blocks_count if profile else 0

    @admin.display(description="last flagged", ordering="risk_profile__last_flagged_at")
    def last_flagged(self, user: ReviewUser) -> str:
        profile = self._profile(user)
        found = profile.last_flagged_at if profile else None
        return f"{found:%Y-%m-%d %H:%M:%S}" if found else "-"

    @admin.display(description="completions")
    def completions(self, user: ReviewUser) -> str:
        url = reverse("admin:actions_completion_changelist")
        return format_html('<a href="{}?user__id__exact={}">all completions</a>', url, user.pk)

    # --- the desk's pages ---------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        act = path(
            "<path:object_id>/act/<slug:act>/",
            self.admin_site.admin_view(self.act_view),
            name="fraud_reviewuser_act",
        )
        return [act, *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # From the profiles (made only on a first flag) and the banned users' index: no
        # join over every user on each page view.
        counts = RiskProfile.objects.aggregate(
            watch=Count("pk", filter=Q(status=RiskProfile.Status.WATCH)),
            under_review=Count("pk", filter=Q(status=RiskProfile.Status.UNDER_REVIEW)),
        )
        counts["banned"] = ReviewUser.objects.filter(is_banned=True).count()
        counts["clear"] = ReviewUser.objects.count() - counts["watch"] - counts["under_review"]
        desk_counts = [
            ("Under review", counts["under_review"], "?status=under_review"),
            ("Watch", counts["watch"], "?status=watch"),
            ("Clear", counts["clear"], "?status=clear"),
            ("Banned", counts["banned"], "?is_banned__exact=1"),
        ]
        return super().changelist_view(
            request, {**(extra_context or {}), "desk_counts": desk_counts}
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        user = self.get_object(request, object_id)
        if user is None or not self.has_view_permission(request, user):
            return super().change_view(request, object_id, form_url, extra_context)
        rows = desk_timeline(user=user)
        summary = desk_summary(user=user, rows=rows)
        may_act = self.has_review_permission(request)
        acts = [
            (act, reverse("admin:fraud_reviewuser_act", args=[user.pk, act.name]))
            for act in ACTS.values()
            if act.name != "reverse" and act.applies(user)
        ]
        context = {
            "summary": summary,
            "timeline": rows,
            "chart": desk_chart(rows=rows, pace=summary.pace),
            "decisions": desk_decisions(user=user),
            "acts": acts if may_act else [],
            "may_act": may_act,
            "reverse_url": reverse("admin:fraud_reviewuser_act", args=[user.pk, "reverse"]),
        }
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), **context}
        )

    def act_view(self, request: HttpRequest, object_id: str, act: str) -> HttpResponse:
        """Confirm an act (GET: what it will change), then do it (POST, with a note)."""
        found = ACTS.get(act)
        if found is None:
            raise Http404("No such act.")
        if not self.has_review_permission(request):
            raise PermissionDenied
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such user.")
        back = reverse("admin:fraud_reviewuser_change", args=[user.pk])
        if not found.applies(user):
            self.message_user(request, f"{found.label}: not for {user} now.", messages.WARNING)
            return HttpResponseRedirect(back)
        if request.method == "POST":
            form = found.form(user, request.POST)
            if form.is_valid():
                chosen = form.chosen() if isinstance(form, ReverseForm) else []
                done = found.run(user, request_user(request), form.cleaned_data["note"], chosen)
                self.message_user(request, done, messages.SUCCESS)
                return HttpResponseRedirect(back)
            picked = request.POST.getlist("completions")
        else:
            picked = request.GET.getlist("completions")
            form = found.form(user, initial={"completions": picked})
        chosen = []
        labels: list[tuple[str, str]] = []
        if isinstance(form, ReverseForm):
            # What the page says will change is what the POST does: the chosen ones go
            # along as hidden fields, and another choice starts from the user's page.
            keys = [key for key in dict.fromkeys(picked) if key in form.rows]
            chosen = [form.rows[key] for key in keys]
            labels = [(key, form.label_of(key)) for key in keys]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": found.title.format(user=user.get_username()),
            "subject": user,
            "act": found,
            "form": form,
            "changes": found.changes(user, chosen),
            "chosen": labels,
            "back": back,
        }
        return TemplateResponse(request, "admin/fraud/reviewuser/act_confirm.html", context)

    # --- the list's actions (several users at once) ------------------------------------
    def _set_banned(
        self, request: HttpRequest, queryset: QuerySet[ReviewUser], *, banned: bool
    ) -> None:
        done = sum(
            user_set_banned(
                user=user, banned=banned, admin=request_user(request), reason="review desk"
            )
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
            risk_profile_clear(user=user, admin=request_user(request))
        self.message_user(request, f"{queryset.count()} users put back to clear.", messages.SUCCESS)

"""What the review desk's lists filter by and show: the list filters (rule, risk band,
reviewed, risk status) and the labels of a fraud log (its place, an impossible travel,
its rules as bars)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from fraud.labels import rule_bars
from fraud.models import FraudLog, ReviewUser, RiskProfile
from fraud.rules import RULES


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


def rules_html(rules: Any, reasons: Any) -> str:
    """Each rule that fired as a labelled bar (a <meter>: no inline style under the CSP)
    with its percentage and its reason."""
    bars = rule_bars(rules, reasons)
    if not bars:
        return "-"
    return format_html(
        '<ul class="desk-rules">{}</ul>',
        format_html_join(
            "",
            '<li data-rule="{}"><span class="desk-rule-label">{}</span>'
            ' <meter min="0" max="100" value="{}">{} %</meter> {} %'
            ' <span class="desk-rule-reason">{}</span></li>',
            ((b.name, b.label, b.percent, b.percent, b.percent, b.reason) for b in bars),
        ),
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

"""What the fraud rules saw: decisions, counts by rule, and the riskiest users."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Avg, Count, Max, Q
from django.utils import timezone

from actions.models import Completion
from fraud.models import AuditEvent

UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30m`, `24h`, `7d`, `2w`."""
    match = re.fullmatch(r"(\d{1,6})([mhdw])", text.strip())
    if not match:
        raise ValueError(text)
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Report fraud decisions, counts by rule and the riskiest users over a period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", default="24h", help="period: 30m, 24h, 7d, 2w (default 24h)")
        parser.add_argument("--top", type=int, default=10, help="riskiest users to list")

    def handle(self, *args: Any, since: str, top: int, **options: Any) -> None:
        try:
            start = timezone.now() - parse_duration(since)
        except ValueError as exc:
            raise CommandError(f"--since must look like 30m, 24h, 7d or 2w, not {since!r}") from exc
        events = AuditEvent.objects.filter(created_at__gte=start)
        decisions = dict(
            events.values_list("kind").annotate(n=Count("id")).values_list("kind", "n")
        )
        by_rule: Counter[str] = Counter()
        for rules in events.exclude(payload__rules={}).values_list("payload__rules", flat=True):
            by_rule.update(name for name, weight in (rules or {}).items() if weight)
        completions = Completion.objects.filter(created_at__gte=start)
        riskiest = (
            completions.values("user__username")
            .annotate(
                n=Count("id"),
                flagged=Count("id", filter=Q(flagged=True)),
                avg=Avg("risk_score"),
                worst=Max("risk_score"),
            )
            .order_by("-worst", "-flagged", "-n")[:top]
        )
        out = self.stdout
        out.write(f"Fraud report since {start:%Y-%m-%d %H:%M} UTC ({since})")
        out.write(f"  completions accepted: {decisions.get('completion.accepted', 0)}")
        out.write(f"  completions flagged:  {completions.filter(flagged=True).count()}")
        out.write(f"  completions blocked:  {decisions.get('completion.blocked', 0)}")
        bans, unbans = decisions.get("user.banned", 0), decisions.get("user.unbanned", 0)
        out.write(f"  bans / unbans:        {bans} / {unbans}")
        out.write("Rules that fired:" if by_rule else "Rules that fired: none")
        for name, count in by_rule.most_common():
            out.write(f"  {name}: {count}")
        out.write("Riskiest users:" if riskiest else "Riskiest users: none")
        for row in riskiest:
            out.write(
                f"  {row['user__username']}: worst {row['worst']:.2f}, mean {row['avg']:.2f}, "
                f"{row['flagged']} flagged of {row['n']}"
            )

"""What the fraud rules saw: decisions, counts by rule, and the riskiest users."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Avg, Count, Max, Q
from django.utils import timezone

from fraud.models import AuditEvent, FraudLog
from scoreboard.selectors import completions_accepted_count

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
        if top < 1:
            raise CommandError("--top must be at least 1")
        accepted = completions_accepted_count(since=start)
        logs = FraudLog.objects.filter(created_at__gte=start)
        decisions = Counter(dict(logs.values_list("event").annotate(n=Count("id"))))
        by_rule: dict[str, Counter[str]] = {}
        for event, rules in logs.values_list("event", "rules"):
            for name in rules or {}:
                by_rule.setdefault(name, Counter())[event] += 1
        staff = Counter(
            dict(
                AuditEvent.objects.filter(
                    created_at__gte=start,
                    kind__in=[
                        AuditEvent.Kind.USER_BANNED,
                        AuditEvent.Kind.USER_UNBANNED,
                        AuditEvent.Kind.COMPLETION_REVERSED,
                    ],
                )
                .values_list("kind")
                .annotate(n=Count("id"))
            )
        )
        riskiest = (
            logs.filter(event__in=[FraudLog.Event.FLAGGED, FraudLog.Event.BLOCKED])
            .values("user_id", "user__username", "user__risk_profile__status")
            .annotate(
                flagged=Count("id", filter=Q(event=FraudLog.Event.FLAGGED)),
                blocked=Count("id", filter=Q(event=FraudLog.Event.BLOCKED)),
                worst=Max("risk_score"),
                mean=Avg("risk_score"),
            )
            .order_by("-worst", "-blocked", "-flagged", "user__username")[:top]
        )
        out = self.stdout
        out.write(f"Fraud report since {start:%Y-%m-%d %H:%M} UTC ({since})")
        out.write(f"  completions accepted: {accepted}")
        out.write(f"  completions flagged:  {decisions['flagged']}")
        out.write(f"  completions blocked:  {decisions['blocked']}")
        out.write(f"  users reviewed:       {decisions['reviewed']}")
        out.write(f"  users escalated:      {decisions['escalated']}")
        bans, unbans = staff["user.banned"], staff["user.unbanned"]
        out.write(f"  bans / unbans:        {bans} / {unbans}")
        out.write(f"  completions reversed: {staff['completion.reversed']}")
        out.write("Rules that fired:" if by_rule else "Rules that fired: none")
        ranked = sorted(by_rule.items(), key=lambda item: (-item[1].total(), item[0]))
        for name, events in ranked:
            parts = ", ".join(f"{n} {event}" for event, n in sorted(events.items()))
            out.write(f"  {name}: {events.total()} ({parts})")
        out.write("Riskiest users:" if riskiest else "Riskiest users: none")
        for row in riskiest:
            status = row["user__risk_profile__status"] or "clear"
            out.write(
                f"  {row['user__username']}: worst {row['worst']:.2f}, mean {row['mean']:.2f}, "
                f"{row['flagged']} flagged, {row['blocked']} blocked, status {status}"
            )

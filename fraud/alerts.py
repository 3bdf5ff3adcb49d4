"""Telling the security team of blocks and escalations (one summary per window), and of
staff accounts whose logins are locked out (`lockout_alert_send`, one per account).

Every block and escalation is a fraud log with no `alerted_at`. `alerts_send` claims the
window (a cache key that lives `FRAUD_ALERT_WINDOW_SECONDS`), takes every such log under a
row lock, sends one summary by `mail_admins` and to the optional webhook, and stamps the
logs. A flood of blocks inside one window waits for the next one (beat runs the same task
every half window), so staff get one message per window however many blocks there are.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections import Counter
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from core import metrics
from fraud.models import FraudLog

logger = logging.getLogger(__name__)

WINDOW_KEY = "fraud:alerts:window"
ALERTED_EVENTS = (FraudLog.Event.BLOCKED, FraudLog.Event.ESCALATED)


def summary_of(logs: list[FraudLog]) -> dict[str, Any]:
    events = Counter(log.event for log in logs)
    users = Counter(log.user.get_username() for log in logs)
    rules: Counter[str] = Counter()
    for log in logs:
        rules.update(log.rules)
    return {
        "type": "fraud.alert",
        "since": min(log.created_at for log in logs).isoformat(),
        "until": max(log.created_at for log in logs).isoformat(),
        "blocked": events.get(FraudLog.Event.BLOCKED, 0),
        "escalated": events.get(FraudLog.Event.ESCALATED, 0),
        "users": [{"username": name, "events": n} for name, n in users.most_common(20)],
        "rules": dict(rules.most_common()),
    }


def _message(summary: dict[str, Any]) -> tuple[str, str]:
    subject = (
        f"Fraud: {summary['blocked']} blocked completions, {summary['escalated']} users "
        "escalated to review"
    )
    lines = [
        f"From {summary['since']} to {summary['until']} (UTC).",
        "",
        "Users:",
        *(f"  {u['username']}: {u['events']}" for u in summary["users"]),
        "",
        "Rules that fired:",
        *(f"  {name}: {n}" for name, n in summary["rules"].items()),
        "",
        "Review them in the admin under Fraud.",
    ]
    return subject, "\n".join(lines)


def _post_webhook(url: str, summary: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 - an operator-configured https URL
        url,
        data=json.dumps(summary).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "scoreboard-fraud-alerts"},
        method="POST",
    )
    timeout = settings.FRAUD_ALERT_WEBHOOK_TIMEOUT
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()


def alerts_send() -> int:
    """Send one summary of the blocks and escalations not yet told, unless one went out in
    this window. Returns how many logs it covered. Safe to run twice."""
    if not cache.add(WINDOW_KEY, "1", timeout=settings.FRAUD_ALERT_WINDOW_SECONDS):
        return 0
    with transaction.atomic():
        logs = list(
            FraudLog.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("user")
            .filter(event__in=ALERTED_EVENTS, alerted_at__isnull=True)
            .order_by("created_at")[:1000]
        )
        if not logs:
            cache.delete(WINDOW_KEY)  # nothing said: the next block may speak at once
            return 0
        summary = summary_of(logs)
        subject, body = _message(summary)
        try:
            mail_admins(subject, body, fail_silently=False)
        except Exception:
            metrics.backing_service_errors.labels("mail").inc()
            logger.exception("could not mail the fraud alert")
        if settings.FRAUD_ALERT_WEBHOOK_URL:
            try:
                _post_webhook(settings.FRAUD_ALERT_WEBHOOK_URL, summary)
            except Exception:
                metrics.backing_service_errors.labels("webhook").inc()
                logger.exception("could not post the fraud alert to the webhook")
        FraudLog.objects.filter(pk__in=[log.pk for log in logs]).update(alerted_at=timezone.now())
    return len(logs)


def lockout_alert_send(*, username: str, ip: str | None, scope: str) -> bool:
    """Mail ADMINS (and post to the webhook) that a staff account's logins are locked
    out: at most once per account per FRAUD_ALERT_WINDOW_SECONDS. True if sent."""
    told = cache.add(
        f"fraud:alerts:lockout:{username}", "1", timeout=settings.FRAUD_ALERT_WINDOW_SECONDS
    )
    if told is False:  # None: the cache did not answer; better told twice than never
        return False
    budget = "this account" if scope == "username" else f"the address {ip}"
    subject = f"Login locked out: staff account {username}"
    body = "\n".join(
        [
            f"Too many failed logins for {budget}: logins of the staff account {username} "
            "are refused until the limiter's window ends.",
            f"Last failed attempt from: {ip or 'unknown'} (budget spent: {scope}).",
            "",
            "If this was not a member of staff mistyping, someone is guessing the password:",
            "see the audit trail in the admin (Fraud > Audit events, kind auth.login_locked_out",
            "and admin.login_failed) and consider changing the password.",
        ]
    )
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:
        metrics.backing_service_errors.labels("mail").inc()
        logger.exception("could not mail the lockout alert")
    if settings.FRAUD_ALERT_WEBHOOK_URL:
        summary = {"type": "auth.staff_locked_out", "username": username, "ip": ip, "scope": scope}
        try:
            _post_webhook(settings.FRAUD_ALERT_WEBHOOK_URL, summary)
        except Exception:
            metrics.backing_service_errors.labels("webhook").inc()
            logger.exception("could not post the lockout alert to the webhook")
    return True

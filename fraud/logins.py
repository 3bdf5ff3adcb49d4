"""Logins in the audit trail, and the security team told of a staff account's lockout.

accounts sits below fraud and may not write AuditEvent: it announces logins with its
signals (accounts.signals) and this module, connected in FraudConfig.ready, records them:

- every login at the admin's form, with its outcome, IP and user agent. A throttled
  attempt is refused before the password is checked and costs nothing to answer, so
  that a flood of them does not become a flood of writes, the first one per username
  and IP in each lockout window is written (the metric
  `scoreboard_admin_login_attempts_total` counts them all);
- every lockout (a failed login that spent a budget of the login limiter, at any door);
  when the account is staff, an alert by mail to ADMINS and to the fraud webhook
  (fraud.alerts), queued as a task.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.dispatch import receiver

from accounts.models import User
from accounts.names import username_key
from accounts.signals import admin_login_attempted, login_locked_out
from core import metrics
from fraud.models import AuditEvent
from fraud.tasks import lockout_alert

logger = logging.getLogger(__name__)

ADMIN_LOGIN_KINDS = {
    "succeeded": AuditEvent.Kind.ADMIN_LOGIN_SUCCEEDED,
    "failed": AuditEvent.Kind.ADMIN_LOGIN_FAILED,
    "refused": AuditEvent.Kind.ADMIN_LOGIN_REFUSED,
    "throttled": AuditEvent.Kind.ADMIN_LOGIN_THROTTLED,
}


@receiver(admin_login_attempted, dispatch_uid="fraud.logins.admin_login")
def admin_login_audit(
    sender: type[User],
    *,
    username: str,
    user: User | None,
    ip: str | None,
    user_agent: str,
    outcome: str,
    **kwargs: Any,
) -> None:
    if outcome == "throttled":
        first = cache.add(f"fraud:audit:throttled:{ip}:{username_key(username)}", "1", 60)
        if first is False:  # None: the cache did not answer, so write it rather than lose it
            return
    AuditEvent.objects.create(
        kind=ADMIN_LOGIN_KINDS[outcome],
        user=user,
        payload={"actor": username, "ip": ip, "userAgent": user_agent, "outcome": outcome},
    )


@receiver(login_locked_out, dispatch_uid="fraud.logins.locked_out")
def lockout_audit(
    sender: type[User],
    *,
    username: str,
    user: User | None,
    ip: str | None,
    scope: str,
    retry_after: int,
    **kwargs: Any,
) -> None:
    staff = user is not None and user.is_staff
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.LOGIN_LOCKED_OUT,
        user=user,
        payload={
            "actor": username,
            "ip": ip,
            "scope": scope,
            "retryAfter": retry_after,
            "staff": staff,
        },
    )
    if user is not None and staff:
        name = user.get_username()
        transaction.on_commit(lambda: _queue_alert(username=name, ip=ip, scope=scope), robust=True)


def _queue_alert(**kwargs: Any) -> None:
    try:
        lockout_alert.delay(**kwargs)
    except Exception:  # the broker is down: the metric's alert rule still fires
        metrics.backing_service_errors.labels("celery").inc()
        logger.exception("could not queue the lockout alert")

"""The login limiter: one budget of failed logins per username and per client IP, shared
by every door (the API's `/api/v1/auth/token/` and the admin's `/admin/login/`).

Failures are counted with the shared atomic limiter (core.ratelimit: Redis `INCR`,
a per-process count while Redis is down) on the name's key (accounts.names), so `ALICE`
and `alice` spend one budget. While either budget is spent every login for it is refused
before the password is checked, the right password included. The failure that spends a
budget starts a lockout: it is counted (`scoreboard_login_lockouts_total`) and announced
with the `login_locked_out` signal (fraud audits it and alerts the security team when
the account is staff).
"""

from __future__ import annotations

from django.conf import settings

from accounts.models import User
from accounts.names import username_key
from accounts.signals import login_locked_out
from core import metrics
from core.errors import RateLimitedError
from core.ratelimit import RateDecision, ratelimit_hit

USER_SCOPE, IP_SCOPE = "login-user", "login-ip"
THROTTLED_MESSAGE = "Too many failed logins; try again later."


def _keys(username: str, ip: str | None) -> tuple[str, str]:
    return username_key(username.strip()), ip or "unknown"


def login_throttle_check(*, username: str, ip: str | None) -> None:
    """Raise RateLimitedError (with Retry-After) while the username's or the IP's budget
    of failed logins is spent. Counts nothing."""
    name_key, ip_key = _keys(username, ip)
    for scope, key, rate in (
        (USER_SCOPE, name_key, settings.LOGIN_FAILURES_PER_USERNAME),
        (IP_SCOPE, ip_key, settings.LOGIN_FAILURES_PER_IP),
    ):
        decision = ratelimit_hit(scope=scope, key=key, rate=rate, increment=False)
        # A peek (no increment) is over the limit once the count has reached it.
        if decision.count >= decision.limit:
            raise RateLimitedError(THROTTLED_MESSAGE, retry_after=decision.reset_seconds)


def login_failure_record(*, username: str, ip: str | None) -> None:
    """Count one failed login against the username and the IP; announce a lockout when
    this failure spent a budget."""
    name_key, ip_key = _keys(username, ip)
    spent: list[tuple[str, RateDecision]] = []
    for scope, key, rate in (
        (USER_SCOPE, name_key, settings.LOGIN_FAILURES_PER_USERNAME),
        (IP_SCOPE, ip_key, settings.LOGIN_FAILURES_PER_IP),
    ):
        decision = ratelimit_hit(scope=scope, key=key, rate=rate)
        if decision.count == decision.limit:  # this very failure reached the limit
            spent.append(("username" if scope == USER_SCOPE else "ip", decision))
    if not spent:
        return
    # Only at a lockout's start: one query, to say whose account it was.
    user = User.objects.filter(username_key=name_key).first()
    staff = user is not None and user.is_staff
    for scope, decision in spent:
        metrics.login_lockouts.labels(scope, "true" if staff else "false").inc()
        login_locked_out.send(
            sender=User,
            username=username,
            user=user,
            ip=ip,
            scope=scope,
            retry_after=decision.reset_seconds,
        )

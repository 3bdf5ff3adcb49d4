"""The admin site, with its login throttled and every login announced for the audit.

The admin's login form shares the API login's limiter (accounts.throttle): the same
budgets of failed logins per username and per client IP, so a password guesser gets no
second budget at the other door. While a budget is spent the form is refused before the
password is checked and the page answers 429 with Retry-After. Each login at the form
sends `admin_login_attempted` (accounts.signals); fraud writes it to the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from accounts.models import User
from accounts.names import username_key
from accounts.signals import admin_login_attempted
from accounts.throttle import login_failure_record, login_throttle_check
from core import metrics
from core.errors import RateLimitedError
from core.http import client_ip, user_agent


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": (
            "Too many failed logins for this account or from this address. "
            "Try again in %(seconds)s seconds."
        ),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after: int | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data  # the fields' own errors: no login was tried
        ip = client_ip(self.request) if self.request is not None else None
        try:
            login_throttle_check(username=username, ip=ip)
        except RateLimitedError as exc:
            self.retry_after = int(exc.headers["Retry-After"])
            self._announce(username, ip, "throttled")
            raise ValidationError(
                self.error_messages["throttled"],
                code="throttled",
                params={"seconds": self.retry_after},
            ) from exc
        try:
            cleaned = super().clean()
        except ValidationError:
            if self.user_cache is None:
                login_failure_record(username=username, ip=ip)
                self._announce(username, ip, "failed")
            else:
                self._announce(username, ip, "refused")
            raise
        self._announce(username, ip, "succeeded")
        return cleaned

    def _announce(self, username: str, ip: str | None, outcome: str) -> None:
        metrics.admin_logins.labels(outcome).inc()
        # Whose account was tried (the audit's user), also when the password was wrong.
        user = self.user_cache or User.objects.filter(username_key=username_key(username)).first()
        admin_login_attempted.send(
            sender=User,
            request=self.request,
            username=username,
            user=user,
            ip=ip,
            user_agent=user_agent(self.request) if self.request is not None else "",
            outcome=outcome,
        )


class ScoreboardAdminSite(admin.AdminSite):
    login_form = ThrottledAdminAuthenticationForm

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The login page; while a budget of failed logins is spent, 429 with Retry-After
        (the page shows the form and says how long to wait)."""
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        retry_after = getattr(form, "retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

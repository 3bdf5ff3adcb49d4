"""Keep the account state that authentication reads (accounts.state) in step with the
users table: every save or delete of a user is written to it after its commit.

And the two events of logins that apps above accounts subscribe to (fraud keeps the
audit trail and alerts the security team; accounts imports neither):
- `login_locked_out`: a failed login spent a budget of the login limiter
  (accounts.throttle). kwargs: username (as typed), user (the account of that name, or
  None), ip, scope ("username" or "ip"), retry_after (seconds).
- `admin_login_attempted`: a login at the admin's form, whatever its outcome.
  kwargs: request, username, user (or None), ip, user_agent, outcome (one of
  ADMIN_LOGIN_OUTCOMES).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from accounts import state
from accounts.models import User

login_locked_out = Signal()
admin_login_attempted = Signal()
# succeeded: logged in; failed: wrong username or password; refused: the right password
# of an account that may not use the admin (not staff, inactive); throttled: refused
# unchecked while a budget of failed logins is spent.
ADMIN_LOGIN_OUTCOMES = ("succeeded", "failed", "refused", "throttled")


@receiver(post_save, sender=User, dispatch_uid="accounts.state.saved")
def user_saved(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    now = state.state_of(instance)
    if created and not now:
        return  # a new account that may act: nothing to record
    user_id = instance.pk
    transaction.on_commit(lambda: state.account_state_set(user_id, now), robust=True)


@receiver(post_delete, sender=User, dispatch_uid="accounts.state.deleted")
def user_deleted(sender: type[User], instance: User, **kwargs: Any) -> None:
    user_id = instance.pk
    transaction.on_commit(lambda: state.account_state_set(user_id, state.DELETED), robust=True)

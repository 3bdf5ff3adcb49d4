"""Keep the account state that authentication reads (accounts.state) in step with the
users table: every save or delete of a user is written to it after its commit."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import state
from accounts.models import User


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

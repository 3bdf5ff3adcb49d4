"""Accounts that collide under the uniqueness rules (accounts.names), and resolving them.

Made for the database of a release before those rules, where migration
`accounts 0005_username_key_email_ci` stops on such accounts: so these read and write
only the columns that schema has (`username_key` only when it exists).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import connection, transaction

from accounts.models import User
from accounts.names import Account, Collision, collisions_of, email_key, username_key


def account_collisions() -> list[Collision]:
    """Every group of accounts sharing a username key or an email key, oldest first."""
    users = User.objects.order_by("date_joined", "pk").only("pk", "username", "email")
    return collisions_of(Account(u.pk, u.username, u.email) for u in users)


def _has_key_column() -> bool:
    with connection.cursor() as cursor:
        columns = connection.introspection.get_table_description(cursor, User._meta.db_table)
    return any(column.name == "username_key" for column in columns)


@dataclass(frozen=True)
class Renamed:
    id: object
    old: str
    new: str


@transaction.atomic
def account_collisions_rename() -> list[Renamed]:
    """Give every account whose username collides with an older account's a free name
    (`name-2`, `name-3`, ...). The oldest account of each group keeps its name."""
    taken = {username_key(name) for name in User.objects.values_list("username", flat=True)}
    with_key = _has_key_column()
    renamed: list[Renamed] = []
    for collision in account_collisions():
        if collision.field != "username":
            continue
        for account in collision.accounts[1:]:
            suffix = 2
            while username_key(new := f"{account.username[:140]}-{suffix}") in taken:
                suffix += 1
            taken.add(username_key(new))
            fields = {"username": new, **({"username_key": username_key(new)} if with_key else {})}
            User.objects.filter(pk=account.id).update(**fields)
            renamed.append(Renamed(account.id, account.username, new))
    return renamed


def account_email_set(*, user_id: str, email: str) -> bool:
    """Change one account's email (to resolve an email collision). False if no such
    account, or if another account already has that email."""
    try:
        uuid.UUID(user_id)
    except ValueError:
        return False
    if User.objects.exclude(pk=user_id).filter(email__iexact=email_key(email)).exists():
        return False
    return bool(User.objects.filter(pk=user_id).update(email=email_key(email)))

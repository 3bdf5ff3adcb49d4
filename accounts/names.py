"""When two usernames or two emails are the same account name.

A username is compared by its key: Unicode NFKC (compatibility forms such as full-width
letters become the plain ones), full case folding, and NFKC again (folding can undo the
normal form), so a full-width `bob`, `BOB` and `bob` share the key `bob`. The key is computed here,
in Python, and kept in its own column under a unique constraint: PostgreSQL and SQLite
then refuse a second account with one key in the very same way (neither database folds
case and width alike by itself: SQLite's `lower()` knows only ASCII, and PostgreSQL's
`normalize()` does not exist in SQLite).

Emails are compared case-insensitively by the database itself (a unique index on
`lower(email)`): addresses are ASCII but for international domain names, and both
databases lower ASCII alike.

Pure functions: the migration that introduced the key uses them too.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

USERNAME_KEY_MAX_LENGTH = 150


def username_normal(name: str) -> str:
    """The stored form of a username: NFKC, as Django's `normalize_username` does."""
    return unicodedata.normalize("NFKC", name)


def username_key(name: str) -> str:
    """The form two usernames are compared in: NFKC, case-folded, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def email_key(email: str) -> str:
    """The form two emails are compared in (what the database's `lower(email)` gives)."""
    return email.strip().lower()


@dataclass(frozen=True)
class Account:
    id: object
    username: str
    email: str


@dataclass(frozen=True)
class Collision:
    """Accounts that one name (`field`: username or email) would make one."""

    field: str
    key: str
    accounts: tuple[Account, ...]

    def describe(self) -> str:
        names = ", ".join(
            f"{a.username!r} <{a.email}> (id {a.id})"
            for a in self.accounts  # oldest first: the one that keeps its name
        )
        return f"{self.field} {self.key!r}: {names}"


class AccountCollisionError(Exception):
    """Existing accounts collide under the uniqueness rules; nothing was changed."""

    def __init__(self, collisions: list[Collision]) -> None:
        self.collisions = collisions
        lines = "\n  ".join(c.describe() for c in collisions)
        super().__init__(
            "These accounts share a username or an email once usernames are compared "
            "after NFKC normalisation and case folding and emails case-insensitively; "
            "nothing was changed:\n  "
            f"{lines}\n"
            "Rename them with `manage.py account_collisions --rename` (it renames every "
            "username but the oldest account's; emails are for you to change), or in the "
            "admin, then migrate again."
        )


def collisions_of(accounts: Iterable[Account]) -> list[Collision]:
    """Every group of accounts that shares a username key or an email key, in the order
    given (pass them oldest first)."""
    by_name: dict[str, list[Account]] = defaultdict(list)
    by_email: dict[str, list[Account]] = defaultdict(list)
    for account in accounts:
        by_name[username_key(account.username)].append(account)
        by_email[email_key(account.email)].append(account)
    found = [
        Collision(field, key, tuple(group))
        for field, groups in (("username", by_name), ("email", by_email))
        for key, group in groups.items()
        if len(group) > 1
    ]
    return found

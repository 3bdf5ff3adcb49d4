"""Ban a user: off the board at once, writes refused, sessions ended."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from fraud.services import user_set_banned


class Command(BaseCommand):
    help = "Ban USERNAME: take them off the leaderboard and refuse their writes."
    banned = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--reason", default="", help="recorded in the audit trail")

    def handle(self, *args: Any, username: str, reason: str = "", **options: Any) -> None:
        user = User.objects.filter(username__iexact=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        changed = user_set_banned(user=user, banned=self.banned, actor="manage.py", reason=reason)
        state = "banned" if self.banned else "not banned"
        if not changed:
            self.stdout.write(f"{user.username} was already {state}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"{user.username} is now {state}."))

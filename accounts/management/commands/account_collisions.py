"""List (and resolve) accounts that share a username or an email under the uniqueness
rules: what migration `accounts 0005_username_key_email_ci` stops on."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.collisions import account_collisions, account_collisions_rename, account_email_set


class Command(BaseCommand):
    help = (
        "List accounts whose usernames are one name after NFKC normalisation and case "
        "folding, or whose emails differ only in case. --rename renames every colliding "
        "username but the oldest account's; --set-email ID ADDRESS changes an email."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rename", action="store_true", help="rename colliding usernames")
        parser.add_argument(
            "--set-email",
            nargs=2,
            action="append",
            default=[],
            metavar=("ID", "ADDRESS"),
            help="give account ID the email ADDRESS (repeatable)",
        )

    def handle(self, *args: Any, rename: bool, set_email: list[list[str]], **options: Any) -> None:
        for user_id, address in set_email:
            if not account_email_set(user_id=user_id, email=address):
                raise CommandError(f"No account {user_id}, or {address!r} is taken.")
            self.stdout.write(f"account {user_id}: email is now {address.lower()}")
        if rename:
            for renamed in account_collisions_rename():
                self.stdout.write(f"account {renamed.id}: {renamed.old!r} -> {renamed.new!r}")
        left = account_collisions()
        for collision in left:
            self.stdout.write(collision.describe())
        if left:
            raise CommandError(
                f"{len(left)} collisions left (usernames: --rename; emails: --set-email)."
            )
        self.stdout.write(self.style.SUCCESS("No accounts collide."))

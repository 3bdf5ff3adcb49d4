"""Lift a user's ban: back on the board with their score."""

from fraud.management.commands.ban_user import Command as BanCommand


class Command(BanCommand):
    help = "Unban USERNAME: put them back on the leaderboard and accept their writes."
    banned = False

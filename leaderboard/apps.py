from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "leaderboard"
    verbose_name = "Leaderboard"

    def ready(self) -> None:
        """The boards follow the ledger: each entry is credited to its periods in its own
        transaction, and every committed entry reaches the indexes."""
        from leaderboard.credits import credit_entry
        from leaderboard.services import leaderboard_ledger_changed
        from scoreboard.services import ledger_extend, ledger_subscribe

        ledger_extend("boards", credit_entry)
        ledger_subscribe(leaderboard_ledger_changed)

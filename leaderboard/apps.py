from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "leaderboard"
    verbose_name = "Leaderboard"

    def ready(self) -> None:
        """The boards follow the ledger: every committed entry reaches the index."""
        from leaderboard.services import leaderboard_ledger_changed
        from scoreboard.services import ledger_subscribe

        ledger_subscribe(leaderboard_ledger_changed)

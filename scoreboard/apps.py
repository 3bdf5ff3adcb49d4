from django.apps import AppConfig


class ScoreboardConfig(AppConfig):
    name = "scoreboard"
    verbose_name = "Score ledger"

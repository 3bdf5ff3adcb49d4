from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "fraud"
    verbose_name = "Fraud review"

    def ready(self) -> None:
        from fraud import (
            board_acts,  # noqa: F401 - audits staff acts on boards
            checks,  # noqa: F401 - registers the system checks
            logins,  # noqa: F401 - audits logins and alerts on staff lockouts
        )

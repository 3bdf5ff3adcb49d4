"""System checks: the service refuses to start with fraud settings that make no sense."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

REVIEW_CHECKS = (
    "hour_spread",
    "interval_regularity",
    "ip_diversity",
    "score_growth",
    "flag_history",
)


@register()
def fraud_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from fraud.review import REVIEW_CHECKS
    from fraud.rules import RULES

    errors: list[CheckMessage] = []
    for setting, known in (("FRAUD_RULE_WEIGHTS", RULES), ("FRAUD_REVIEW_WEIGHTS", REVIEW_CHECKS)):
        for name, weight in getattr(settings, setting).items():
            if name not in known:
                errors.append(
                    Error(
                        f"{setting} names an unknown rule {name!r}",
                        hint=f"Known: {', '.join(known)}.",
                        id="fraud.E001",
                    )
                )
            elif not 0.0 <= weight <= 1.0:
                errors.append(
                    Error(f"{setting}: {name} must weigh between 0 and 1", id="fraud.E002")
                )
    flag, block = settings.FRAUD_FLAG_THRESHOLD, settings.FRAUD_BLOCK_THRESHOLD
    if not 0.0 < flag <= block <= 1.0:
        errors.append(
            Error(
                "FRAUD_FLAG_THRESHOLD and FRAUD_BLOCK_THRESHOLD need 0 < flag <= block <= 1",
                id="fraud.E003",
            )
        )
    return errors

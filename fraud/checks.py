"""System checks: the service refuses to start with fraud settings that make no sense, and
says once, at start-up, which rule is off for want of a GeoIP database."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from fraud.geo import database_problem
from fraud.review import REVIEW_CHECKS
from fraud.rules import RULES


@register()
def fraud_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
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


@register()
def geoip_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """No GeoIP database is no error: the travel rule is off, and the operator is told."""
    weighted = settings.FRAUD_RULE_WEIGHTS.get("impossible_travel", 0.0) > 0
    if not settings.GEOIP_PATH:
        if not weighted:
            return []
        return [
            Warning(
                "The impossible_travel fraud rule is off: no GeoIP2 City database (GEOIP_PATH).",
                hint="Point GEOIP_PATH at a GeoLite2-City.mmdb (docs/fraud.md), or set "
                "FRAUD_RULE_WEIGHTS=impossible_travel=0 to silence this.",
                id="fraud.W001",
            )
        ]
    problem = database_problem(settings.GEOIP_PATH)
    if problem is None:
        return []
    return [
        Warning(
            f"GEOIP_PATH is unusable, so the impossible_travel fraud rule is off: {problem}",
            hint="GEOIP_PATH names a GeoIP2 or GeoLite2 City .mmdb file, or the directory "
            "holding GeoLite2-City.mmdb (docs/fraud.md).",
            id="fraud.W002",
        )
    ]

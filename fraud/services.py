"""Fraud assessment of a completion before it is accepted.

The rule set is the fraud review's to fill (SPEC "Fraud detection and review"); the
interface is fixed here: a risk score in [0, 1], each rule's contribution, and the flag
and block decisions from the thresholds in settings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings


@dataclass(frozen=True)
class RiskAssessment:
    score: float
    rules: dict[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.score >= settings.FRAUD_FLAG_THRESHOLD

    @property
    def blocked(self) -> bool:
        return self.score >= settings.FRAUD_BLOCK_THRESHOLD


def fraud_assess(
    *,
    user_id: uuid.UUID,
    action_id: str,
    ip: str | None,
    user_agent: str,
    client_timestamp: datetime | None,
    now: datetime,
) -> RiskAssessment:
    """Score a completion before its transaction. No rules are active yet: every one passes."""
    return RiskAssessment(score=0.0, rules={})

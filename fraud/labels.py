"""How the review desk says things: rule names in words, percentages, spans of time,
devices and places, and each rule's contribution as a labelled bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RULE_LABELS = {
    "request_frequency": "Faster than a person",
    "score_jump": "Sudden jump in points",
    "regular_timing": "Timed like a script",
    "impossible_rate": "Quicker than the action takes",
    "device_change": "Network or device changed",
    "new_account": "New account",
    "duplicate_completion": "Same action again at once",
    "ip_farm": "Many accounts on one address",
    "impossible_travel": "Impossible travel",
    "hour_spread": "Active around the clock",
    "interval_regularity": "Timer-like over days",
    "ip_diversity": "Many networks",
    "score_growth": "Points far above other players",
    "flag_history": "Flagged often",
}


def rule_label(name: str) -> str:
    return RULE_LABELS.get(name) or name.replace("_", " ").capitalize()


def percent(value: float) -> int:
    """A risk or contribution in [0, 1] as a whole percentage."""
    return round(max(0.0, min(1.0, value)) * 100)


def span_label(seconds: float) -> str:
    """A duration as a reviewer reads it: 0.3 s, 12 s, 4 min, 5.0 h, 3 days."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def device_label(user_agent: str) -> str:
    """The user agent, short: its first product token and the platform in brackets."""
    if not user_agent:
        return "-"
    head = user_agent.split(" ", 1)[0]
    platform = (
        user_agent[user_agent.find("(") + 1 : user_agent.find(")")] if "(" in user_agent else ""
    )
    label = f"{head} ({platform})" if platform else head
    return label if len(label) <= 60 else f"{label[:57]}..."


def place_text(found: Any) -> str:
    if not isinstance(found, dict):
        return ""
    return ", ".join(str(found[key]) for key in ("city", "country") if found.get(key))


@dataclass(frozen=True)
class RuleBar:
    """One rule's weighted contribution to a decision, with its reason."""

    name: str
    label: str
    percent: int
    reason: str


def rule_bars(rules: Any, reasons: Any) -> list[RuleBar]:
    if not isinstance(rules, dict):
        return []
    reasons = reasons if isinstance(reasons, dict) else {}
    ranked = sorted(rules.items(), key=lambda item: item[1], reverse=True)
    return [
        RuleBar(name, rule_label(name), percent(float(value)), str(reasons.get(name) or ""))
        for name, value in ranked
        if isinstance(value, int | float) and value > 0
    ]

"""The review desk's acts on one user: what each would change, said before it is done, and
the audited service that does it with the reviewer's note."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils import timezone

from accounts.models import User
from fraud.models import FraudLog, RiskProfile
from fraud.selectors import TimelineRow, active_sessions, board_rank_with, desk_timeline
from fraud.services import (
    fraud_reverse_entry,
    risk_profile_clear,
    risk_profile_watch,
    user_set_banned,
)
from leaderboard.selectors import leaderboard_rank_and_score
from scoreboard.models import ScoreEntry


class ActForm(forms.Form):
    note = forms.CharField(
        label="Note for the audit record",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "Say why: the note goes into the audit record."},
    )


class ReverseForm(ActForm):
    completions = forms.MultipleChoiceField(
        label="Completions to reverse",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one completion to reverse."},
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        rows: list[TimelineRow],
        initial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data, initial=initial)
        self.rows = {str(row.completion_id): row for row in rows if row.reversible}
        field = self.fields["completions"]
        assert isinstance(field, forms.MultipleChoiceField)  # noqa: S101 - declared above
        field.choices = [
            (
                key,
                f"{_at(row)} {row.action}, {row.points:+,} points"
                f" ({row.decision}{f', risk {row.risk} %' if row.risk is not None else ''})",
            )
            for key, row in self.rows.items()
        ]

    def label_of(self, key: str) -> str:
        return dict(self.fields["completions"].choices)[key]  # type: ignore[attr-defined]

    def chosen(self) -> list[TimelineRow]:
        return [self.rows[key] for key in self.cleaned_data["completions"]]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _at(row: TimelineRow) -> str:
    at = timezone.localtime(row.at)
    return f"{at:%Y-%m-%d %H:%M:%S}.{at.microsecond // 1000:03d}"


def _rank(user: User) -> str:
    found = leaderboard_rank_and_score(user_id=user.pk)
    return f"rank {found[0]}" if found else "not on the board"


def _open_logs(user: User) -> int:
    return FraudLog.objects.filter(user=user, reviewed_at__isnull=True).count()


def _status(user: User) -> RiskProfile | None:
    return RiskProfile.objects.filter(user=user).first()


def _clear_changes(user: User, chosen: list[TimelineRow]) -> list[str]:
    profile = _status(user)
    was = profile.get_status_display() if profile else "Clear"
    risk = f"{profile.rolling_risk:.0%}" if profile else "0%"
    return [
        f"Status: {was} → Clear; rolling risk {risk} → 0%.",
        f"{_open_logs(user)} open fraud logs closed as “Cleared: no fraud”.",
        f"Points and board position unchanged ({user.score:,} points, {_rank(user)}).",
    ]


def _watch_changes(user: User, chosen: list[TimelineRow]) -> list[str]:
    profile = _status(user)
    was = profile.get_status_display() if profile else "Clear"
    return [
        f"Status: {was} → Watch (the desk keeps listing them).",
        "Rolling risk, open fraud logs, points and board position unchanged.",
    ]


def _ban_changes(user: User, chosen: list[TimelineRow]) -> list[str]:
    return [
        f"Off the board at once: now {_rank(user)} with {user.score:,} points; after: not listed.",
        f"{active_sessions(user=user)} active sessions ended; new completions refused.",
        f"{_open_logs(user)} open fraud logs closed as “User banned”.",
        "Points stay on the ledger (reverse completions to take them back).",
    ]


def _unban_changes(user: User, chosen: list[TimelineRow]) -> list[str]:
    rank = board_rank_with(user=user, score=user.score)
    board = f"about rank {rank}" if rank else "not listed (no points)"
    return [
        f"Back on the board with {user.score:,} points: {board}.",
        "They may complete actions again; ended sessions stay ended (they log in again).",
    ]


def _reverse_changes(user: User, chosen: list[TimelineRow]) -> list[str]:
    removed = sum(row.points for row in chosen)
    after = user.score - removed
    rank = None if user.is_banned else board_rank_with(user=user, score=after)
    board = f"about rank {rank}" if rank else "not listed"
    return [
        f"Points removed: {removed:,} ({_count(len(chosen), 'completion')}, one compensating"
        " ledger entry each).",
        f"Score: {user.score:,} → {after:,}; board: {_rank(user)} → {board}.",
        "Their fraud logs closed as “Completion reversed”; the live board updates.",
    ]


def _entries(rows: list[TimelineRow]) -> dict[int, ScoreEntry]:
    ids = [row.entry_id for row in rows if row.entry_id is not None]
    return ScoreEntry.objects.in_bulk(ids)


def _clear(user: User, admin: User, note: str, chosen: list[TimelineRow]) -> str:
    risk_profile_clear(user=user, admin=admin, note=note)
    return f"Put {user.get_username()} back to clear."


def _watch(user: User, admin: User, note: str, chosen: list[TimelineRow]) -> str:
    done = risk_profile_watch(user=user, admin=admin, note=note)
    return f"{'Put' if done else 'Already had'} {user.get_username()} on watch."


def _ban(user: User, admin: User, note: str, chosen: list[TimelineRow]) -> str:
    done = user_set_banned(user=user, banned=True, admin=admin, reason="review desk", note=note)
    return f"{'Banned' if done else 'Already banned:'} {user.get_username()}."


def _unban(user: User, admin: User, note: str, chosen: list[TimelineRow]) -> str:
    done = user_set_banned(user=user, banned=False, admin=admin, reason="review desk", note=note)
    return f"{'Unbanned' if done else 'Was not banned:'} {user.get_username()}."


def _reverse(user: User, admin: User, note: str, chosen: list[TimelineRow]) -> str:
    entries = _entries(chosen)
    done = 0
    for row in chosen:
        entry = entries.get(row.entry_id or 0)
        if entry is None or row.completion_id is None:
            continue
        done += fraud_reverse_entry(
            completion_id=uuid.UUID(str(row.completion_id)), entry=entry, admin=admin, note=note
        )
    skipped = len(chosen) - done
    return f"{_count(done, 'completion')} reversed" + (
        f"; {skipped} had been reversed before." if skipped else "."
    )


@dataclass(frozen=True)
class Act:
    name: str
    label: str  # the button
    title: str  # the confirmation page's question
    changes: Callable[[User, list[TimelineRow]], list[str]]
    run: Callable[[User, User, str, list[TimelineRow]], str]
    danger: bool = False

    def applies(self, user: User) -> bool:
        """Whether the act makes sense now (ban a banned user: no)."""
        if self.name == "ban":
            return not user.is_banned
        if self.name == "unban":
            return user.is_banned
        return True

    def form(
        self,
        user: User,
        data: Mapping[str, Any] | None = None,
        initial: dict[str, Any] | None = None,
    ) -> ActForm:
        if self.name == "reverse":
            return ReverseForm(data, initial=initial, rows=desk_timeline(user=user))
        return ActForm(data, initial=initial)


ACTS: dict[str, Act] = {
    act.name: act
    for act in (
        Act("clear", "Clear", "Put {user} back to clear?", _clear_changes, _clear),
        Act("watch", "Watch", "Put {user} on watch?", _watch_changes, _watch),
        Act("ban", "Ban", "Ban {user}?", _ban_changes, _ban, danger=True),
        Act("unban", "Unban", "Unban {user}?", _unban_changes, _unban),
        Act(
            "reverse",
            "Reverse selected completions",
            "Reverse completions of {user}?",
            _reverse_changes,
            _reverse,
            danger=True,
        ),
    )
}

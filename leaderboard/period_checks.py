"""The consistency of every period (check_consistency): a held period's running totals
equal the sum of its credits and its index holds them; a closed period's standings
still hash to its checksum. The ledger and its credits are the truth: a repair resets
the totals from the credits and rebuilds the index, and never touches a closed
period's standings (a record: a mismatch there is for someone to look into)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max, Sum

from leaderboard.closing import checksum_of
from leaderboard.index import IndexColdError
from leaderboard.models import GLOBAL, Period, PeriodCredit, PeriodScore, Standing
from leaderboard.period_index import period_index


@dataclass(frozen=True)
class PeriodMismatch:
    """One disagreement in one period. `kind`: `score` (total != credits), `index`
    (index != total) or `checksum` (standings != checksum)."""

    board: str
    key: str
    period_id: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.board} {self.key}: {self.detail}"


def _credit_totals(period_id: int) -> dict[Any, tuple[int, Any, int]]:
    rows = (
        PeriodCredit.objects.filter(period_id=period_id)
        .values("user_id")
        .annotate(total=Sum("delta"), at=Max("at"), last=Max("entry_id"))
        .values_list("user_id", "total", "at", "last")
    )
    return {uid: (total, at, last) for uid, total, at, last in rows.iterator(10_000)}


def period_score_mismatches(period: Period) -> list[PeriodMismatch]:
    """Every user whose running total in `period` differs from the sum of their credits."""
    credits = _credit_totals(period.pk)
    scores = dict(
        PeriodScore.objects.filter(period=period).values_list("user_id", "score").iterator(10_000)
    )
    problems = []
    for uid in sorted(set(credits) | set(scores), key=str):
        expected = credits[uid][0] if uid in credits else None
        if scores.get(uid) != expected:
            problems.append(
                PeriodMismatch(
                    period.board.slug,
                    period.key,
                    period.pk,
                    "score",
                    f"user {uid} total {scores.get(uid)} != credits sum {expected}",
                )
            )
    return problems


def period_index_mismatches(period: Period) -> list[PeriodMismatch]:
    """Every user of `period` whose index entry differs from their running total (ranked:
    score > 0, active, not banned; anyone else must be absent). A cold index is one
    mismatch when the period has ranked users (a read rebuilds it, but it is not
    serving). Raises on Redis errors."""
    rows = list(
        PeriodScore.objects.filter(period=period).values_list(
            "user_id", "user__username", "score", "user__is_active", "user__is_banned"
        )
    )
    index = period_index(period.pk)
    try:
        found = {uid: index.rank(user_id=uid) for uid, *_ in rows}
    except IndexColdError:
        if any(score > 0 and active and not banned for _, _, score, active, banned in rows):
            return [PeriodMismatch(period.board.slug, period.key, period.pk, "index", "cold")]
        return []
    problems = []
    for uid, name, score, active, banned in rows:
        expected = score if active and not banned and score > 0 else None
        ranked = found[uid]
        got = ranked[1] if ranked else None
        if expected != got:
            problems.append(
                PeriodMismatch(
                    period.board.slug,
                    period.key,
                    period.pk,
                    "index",
                    f"{name} expected {expected}, index has {got}",
                )
            )
    return problems


def period_checksum_mismatches(period: Period) -> list[PeriodMismatch]:
    """A closed period whose current standings no longer hash to its checksum, or
    whose number of rows differs from its participants."""
    rows = list(
        Standing.objects.filter(period=period, revision=period.revision)
        .order_by("rank")
        .values_list("rank", "user_id", "score", "reached_at")
    )
    checksum = checksum_of(rows)
    problems = []
    if checksum != period.checksum:
        problems.append(
            PeriodMismatch(
                period.board.slug,
                period.key,
                period.pk,
                "checksum",
                f"revision {period.revision} standings hash to {checksum}, "
                f"the period says {period.checksum}",
            )
        )
    if len(rows) != period.participants:
        problems.append(
            PeriodMismatch(
                period.board.slug,
                period.key,
                period.pk,
                "checksum",
                f"revision {period.revision} has {len(rows)} standings, "
                f"the period says {period.participants} participants",
            )
        )
    return problems


def periods_to_check() -> list[Period]:
    """Every period of every board but `global` (which has none: its totals are the
    users' own), held ones first."""
    periods = Period.objects.exclude(board__slug=GLOBAL).select_related("board")
    return sorted(periods, key=lambda p: (p.state == Period.State.CLOSED, p.board_id, p.key))


def period_scores_reset(*, period_id: int) -> int:
    """Reset a held period's running totals to the sums of its credits; the number of
    users changed. The period's row lock (FOR NO KEY UPDATE) waits for, and holds back,
    the credits in flight (they take FOR SHARE on it), so no credit lands mid-reset."""
    with transaction.atomic():
        period = Period.objects.select_for_update(no_key=True).filter(pk=period_id).first()
        if period is None or period.state == Period.State.CLOSED:
            return 0
        credits = _credit_totals(period_id)
        scores = {
            row.user_id: row for row in PeriodScore.objects.filter(period_id=period_id).iterator()
        }
        changed = 0
        for uid, row in scores.items():
            if uid not in credits:
                row.delete()
                changed += 1
        for uid, (total, at, last) in credits.items():
            held = scores.get(uid)
            if held is not None and (held.score, held.reached_at, held.entry_id) == (
                total,
                at,
                last,
            ):
                continue
            PeriodScore.objects.update_or_create(
                period_id=period_id,
                user_id=uid,
                defaults={"score": total, "reached_at": at, "entry_id": last},
            )
            changed += 1
    return changed

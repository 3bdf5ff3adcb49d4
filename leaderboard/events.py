"""The WebSocket messages of the live board: one TypedDict and one encoder each.

Every frame the server sends is encoded here (compact JSON), so the protocol of SPEC.md
has one place in the code. Two frames are also assembled without a dict, for speed, and
must stay byte-equal to these encoders (a test holds them to it): the snapshot of the last
push (`snapshot_from_raw`, from the JSON text Redis holds) and the `me.update` that the
index's write script publishes in Lua (leaderboard/index.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict


class SnapshotEvent(TypedDict):
    type: Literal["leaderboard.snapshot"]
    entries: Sequence[Mapping[str, Any]]
    version: int


class UpdateEvent(TypedDict):
    type: Literal["leaderboard.update"]
    entries: Sequence[Mapping[str, Any]]
    changes: Sequence[Mapping[str, Any]]
    version: int


class MeUpdateEvent(TypedDict):
    type: Literal["me.update"]
    score: int
    rank: int | None
    boards: NotRequired[list[Any]]  # each board the change counted on: board, period, score, rank


class PongEvent(TypedDict):
    type: Literal["pong"]


class ErrorEvent(TypedDict):
    type: Literal["error"]
    code: str
    message: str


def _dumps(event: Mapping[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def dumps(event: Mapping[str, Any]) -> str:
    """A board socket's frame (leaderboard/board_broadcast.py): its snapshot, update and
    rollover carry `board` and `period` besides the fields of the global board's."""
    return _dumps(event)


def encode_snapshot(entries: Sequence[Mapping[str, Any]], version: int) -> str:
    event: SnapshotEvent = {"type": "leaderboard.snapshot", "entries": entries, "version": version}
    return _dumps(event)


def snapshot_from_raw(entries_json: str, version: int) -> str:
    """`encode_snapshot` of entries already encoded (the last push's, as Redis holds them)."""
    return '{"type":"leaderboard.snapshot","entries":' + entries_json + f',"version":{version}}}'


def encode_update(
    entries: Sequence[Mapping[str, Any]], changes: Sequence[Mapping[str, Any]], version: int
) -> str:
    event: UpdateEvent = {
        "type": "leaderboard.update",
        "entries": entries,
        "changes": changes,
        "version": version,
    }
    return _dumps(event)


def me_update(score: int, rank: int | None, boards: list[Any] | None = None) -> MeUpdateEvent:
    event: MeUpdateEvent = {"type": "me.update", "score": score, "rank": rank}
    if boards is not None:
        event["boards"] = boards
    return event


def encode_me_update(score: int, rank: int | None, boards: list[Any] | None = None) -> str:
    return _dumps(me_update(score, rank, boards))


PONG = _dumps(PongEvent(type="pong"))


def encode_error(code: str, message: str) -> str:
    event: ErrorEvent = {"type": "error", "code": code, "message": message}
    return _dumps(event)


def top_changes(
    top: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The entries of `top` that are new or moved since `previous` (an update's
    `changes`, on the global board's socket and every board's)."""
    before = {entry["userId"]: entry for entry in previous}
    changes = []
    for entry in top:
        old = before.get(entry["userId"])
        if old is None or old["score"] != entry["score"] or old["rank"] != entry["rank"]:
            changes.append(
                {
                    "userId": entry["userId"],
                    "username": entry["username"],
                    "score": entry["score"],
                    "rank": entry["rank"],
                    "previousRank": old["rank"] if old else None,
                }
            )
    return changes

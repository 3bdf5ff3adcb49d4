"""The ranking index's byte layout (leaderboard/index.py's docstring describes it): the
member of the sorted set and the bucket entry of each user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

BUCKET_BYTES = 2  # 65,536 buckets: ~15 users each at 1M, listpacks up to ~8M users
MASK128 = (1 << 128) - 1
MAX_MICROS = (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def user_field(user_id: uuid.UUID) -> bytes:
    """The inverted user id: the member's tail and the user's key in their bucket."""
    return (user_id.int ^ MASK128).to_bytes(16, "big")


def user_id_of(field: bytes) -> uuid.UUID:
    return uuid.UUID(int=int.from_bytes(field, "big") ^ MASK128)


BUCKETS = 1 << (8 * BUCKET_BYTES)


def bucket_of(field: bytes, buckets: int = BUCKETS) -> str:
    """The field's bucket: its last two bytes modulo `buckets` (a power of two up to
    65,536), as four hex digits. The global index uses all 65,536; a period's index
    fewer (leaderboard/period_index.py), so that a board of 100k users does not pay a
    bucket's key overhead for every one or two of them."""
    return f"{int.from_bytes(field[-BUCKET_BYTES:], 'big') % buckets:04x}"


def micros_of(reached_at: datetime) -> int:
    """Microseconds since 1970, exactly (no float)."""
    return (reached_at - _EPOCH) // _MICROSECOND


def inverted_time(reached_at: datetime) -> bytes:
    """The reached-at time, inverted so that earlier sorts higher."""
    return (MAX_MICROS - micros_of(reached_at)).to_bytes(8, "big")


def member_for(*, user_id: uuid.UUID, reached_at: datetime) -> bytes:
    return inverted_time(reached_at) + user_field(user_id)

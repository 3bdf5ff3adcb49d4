"""A board's live socket: `/ws/boards/{slug}/`, the protocol of `/ws/leaderboard/` with
`board` and `period` in its frames and a rollover at each boundary
(leaderboard/board_broadcast.py)."""

from __future__ import annotations

from channels.db import database_sync_to_async

from leaderboard import events
from leaderboard.board_broadcast import board_broadcaster, board_snapshot
from leaderboard.boards import BoardNotFoundError, active_boards
from leaderboard.consumers import SERVER_SEND, LeaderboardConsumer

CLOSE_NOT_FOUND = 4404


def _exists(slug: str) -> bool:
    try:
        active_boards.get(slug)
    except BoardNotFoundError:
        return False
    return True


class BoardConsumer(LeaderboardConsumer):
    @property
    def slug(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["slug"])

    async def join(self, *, user_id: str | None) -> None:
        if not await database_sync_to_async(_exists)(self.slug):
            await self.send(text_data=events.encode_error("board_not_found", "No such board."))
            await self.close(code=CLOSE_NOT_FOUND)
            return
        board_broadcaster.join(
            self.slug, id(self), self.base_send, self.scope.get(SERVER_SEND), user_id
        )
        await self.send(text_data=await self.snapshot())

    def leave(self) -> None:
        board_broadcaster.leave(self.slug, id(self))

    async def snapshot(self) -> str:
        text, span, top, version = await database_sync_to_async(board_snapshot)(self.slug)
        board_broadcaster.remember(self.slug, span, top, version)
        return text

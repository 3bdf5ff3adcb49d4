"""WebSocket authentication: query token, subprotocol token, session, anonymous, bad tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.websocket import AUTH_CLOSE_CODE, WebSocketAuthMiddlewareStack
from tests.conftest import access_token_for

pytestmark = pytest.mark.django_db(transaction=True)


class WhoAmI(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept(subprotocol=self.scope.get("accepted_subprotocol"))
        if self.scope.get("auth_error"):
            await self.close(code=AUTH_CLOSE_CODE)
            return
        user = self.scope["user"]
        await self.send_json(
            {
                "user": user.username if user.is_authenticated else None,
                "queryString": self.scope["query_string"].decode(),
            }
        )


app = WebSocketAuthMiddlewareStack(WhoAmI.as_asgi())


async def connect(path: str = "/ws/test/", **kwargs):  # type: ignore[no-untyped-def]
    communicator = WebsocketCommunicator(app, path, **kwargs)
    connected, subprotocol = await communicator.connect(timeout=5)
    return communicator, connected, subprotocol


async def test_it_authenticates_a_token_in_the_query_string(alice) -> None:  # type: ignore[no-untyped-def]
    token = await database_sync_to_async(access_token_for)(alice)
    communicator, connected, _ = await connect(f"/ws/test/?token={token}")
    assert connected
    assert await communicator.receive_json_from() == {"user": "alice", "queryString": ""}
    await communicator.disconnect()


async def test_it_authenticates_a_token_subprotocol_and_echoes_it(alice) -> None:  # type: ignore[no-untyped-def]
    token = await database_sync_to_async(access_token_for)(alice)
    communicator, connected, subprotocol = await connect(subprotocols=[f"bearer.{token}"])
    assert connected
    assert subprotocol == f"bearer.{token}"
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.disconnect()


async def test_it_closes_with_4401_for_a_bad_token(db) -> None:  # type: ignore[no-untyped-def]
    communicator, connected, _ = await connect("/ws/test/?token=garbage")
    assert connected
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": AUTH_CLOSE_CODE,
    }


async def test_it_closes_with_4401_for_an_expired_token(alice) -> None:  # type: ignore[no-untyped-def]
    def expired() -> str:
        token = AccessToken.for_user(alice)
        token.set_exp(lifetime=-timedelta(seconds=5))
        return str(token)

    raw = await database_sync_to_async(expired)()
    communicator, _connected, _ = await connect(subprotocols=[f"bearer.{raw}"])
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": AUTH_CLOSE_CODE,
    }


async def test_it_authenticates_a_browser_session(alice) -> None:  # type: ignore[no-untyped-def]
    def session_cookie() -> str:
        client = Client()
        client.force_login(alice)
        return client.cookies["sessionid"].value

    cookie = await database_sync_to_async(session_cookie)()
    communicator, connected, _ = await connect(
        headers=[(b"cookie", f"sessionid={cookie}".encode())]
    )
    assert connected
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.disconnect()


async def test_it_lets_anonymous_viewers_in(db) -> None:  # type: ignore[no-untyped-def]
    communicator, connected, _ = await connect()
    assert connected
    assert (await communicator.receive_json_from())["user"] is None
    await communicator.disconnect()


async def test_it_treats_a_banned_user_as_anonymous(mallory) -> None:  # type: ignore[no-untyped-def]
    def ban_and_token() -> str:
        token = access_token_for(mallory)
        mallory.is_banned = True
        mallory.save()
        return token

    token = await database_sync_to_async(ban_and_token)()
    communicator, _connected, _ = await connect(f"/ws/test/?token={token}")
    assert (await communicator.receive_json_from())["user"] is None
    await communicator.disconnect()

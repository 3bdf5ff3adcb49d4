"""Request bodies sent without Content-Length (chunked), given one before Django sees them.

Django sizes a request body by its Content-Length: under WSGI it reads nothing more
(a chunked body reads as empty, even where gunicorn sets `wsgi.input_terminated`), and
DRF parses no body at all without the header, under WSGI or ASGI. Such a body then
passed as an empty one (400 field errors) whatever its size. These adapters, one per
server interface, read at most REQUEST_MAX_BODY_BYTES + 1 bytes of it and hand it on
with its Content-Length, so `RequestSizeLimitMiddleware` answers 413 past the limit and
the views parse the body below it, exactly as for a body sent with the header.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from django.conf import settings

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class SizedBodyWSGI:
    """WSGI: a chunked body the server has de-chunked (`wsgi.input_terminated`, PEP 3333
    amendment that gunicorn implements) is read up to the limit and given its length."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if (
            "HTTP_TRANSFER_ENCODING" in environ
            and not environ.get("CONTENT_LENGTH")
            and environ.get("wsgi.input_terminated")
        ):
            body = environ["wsgi.input"].read(settings.REQUEST_MAX_BODY_BYTES + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


class SizedBodyASGI:
    """ASGI (HTTP): a body without a `content-length` header is received up to the limit
    and passed on as one message with the header; what is left of a longer one is
    discarded as it arrives (Django answers 413 without it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(
            name == b"content-length" for name, _ in scope.get("headers", ())
        ):
            await self.app(scope, receive, send)
            return
        limit = settings.REQUEST_MAX_BODY_BYTES
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= limit:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body ended: nobody to answer
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            scope = {
                **scope,
                "headers": [*scope.get("headers", ()), (b"content-length", b"%d" % size)],
            }
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            while True:  # the rest of an oversize body, then the disconnect Django awaits
                message = await receive()
                if message["type"] != "http.request":
                    return message

        await self.app(scope, replay, send)

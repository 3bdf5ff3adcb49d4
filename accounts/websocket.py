"""WebSocket authentication for Channels."""

from channels.auth import AuthMiddlewareStack

WebSocketAuthMiddlewareStack = AuthMiddlewareStack

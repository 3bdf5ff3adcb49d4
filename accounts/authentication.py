"""REST authentication: simplejwt with stable error codes and the ban rule."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from accounts.errors import TokenInvalidError, UserBannedError
from accounts.models import User
from accounts.tokens import access_token_verify


class BearerAuthentication(JWTAuthentication):
    """Bearer access tokens; a banned user's token is refused (403) on every write."""

    def get_validated_token(self, raw_token: bytes) -> Token:
        return access_token_verify(raw_token.decode("latin-1"))

    def get_user(self, validated_token: Token) -> User:
        user_id = validated_token.get("user_id")
        user = User.objects.filter(pk=user_id).first() if user_id else None
        if user is None or not user.is_active:
            # Deleted and deactivated accounts: the token no longer names a valid user.
            raise TokenInvalidError("The token's user no longer exists or is inactive.")
        return user

    def authenticate(self, request: Request) -> tuple[User, Token] | None:  # type: ignore[override]
        result = super().authenticate(request)
        if result is not None and result[0].is_banned and request.method not in SAFE_METHODS:
            raise UserBannedError()
        return result


class NotBanned(BasePermission):
    """For reads that are the user's own (such as /me): banned users get 403 there too."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(request.user, "is_banned", False):
            raise UserBannedError()
        return True

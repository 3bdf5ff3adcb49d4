"""Accounts API: registration, tokens, the user's profile and sessions."""

from __future__ import annotations

from django.conf import settings
from django.db import close_old_connections, connection
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.authentication import NotBanned, request_user
from accounts.serializers import (
    LoginSerializer,
    RefreshSerializer,
    RegisterSerializer,
    SessionSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from core.errors import RateLimitedError
from core.http import client_ip, user_agent
from core.ratelimit import ratelimit_hit

ERRORS = {
    400: OpenApiResponse(description="invalid input (`invalid`, field errors in details)"),
    401: OpenApiResponse(description="`credentials_invalid`, `token_invalid`, `token_expired`"),
    403: OpenApiResponse(description="`user_banned`"),
    429: OpenApiResponse(description="`rate_limited`, with Retry-After"),
}


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        decision = ratelimit_hit(
            scope="register-ip",
            key=client_ip(request) or "unknown",
            rate=settings.REGISTRATIONS_PER_IP,
        )
        if decision.limited:
            raise RateLimitedError(retry_after=decision.reset_seconds)
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # Hashing the password takes a busy core up to a second: under daphne, whose sync
        # views share a pool of DB_POOL_MAX_SIZE connections, the connection the checks
        # above took goes back to the pool for that time (a no-op for gunicorn's
        # persistent connections), so a burst of registrations never waits past
        # DB_POOL_TIMEOUT for one. Never inside a transaction (a test's, for one).
        if not connection.in_atomic_block:
            close_old_connections()
        user = services.user_register(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.session_login(
            **serializer.validated_data, ip=client_ip(request), user_agent=user_agent(request)
        )
        return Response({"access": pair.access, "refresh": pair.refresh})


class TokenRefreshView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.session_refresh(
            refresh=serializer.validated_data["refresh"],
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
        return Response({"access": pair.access, "refresh": pair.refresh})


class LogoutView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RefreshSerializer, responses={205: None, **ERRORS})
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.session_logout(refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_205_RESET_CONTENT)


class SessionListView(APIView):
    permission_classes = [IsAuthenticated, NotBanned]

    @extend_schema(responses={200: SessionSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        sessions = selectors.sessions_active(user=request_user(request))
        return Response(SessionSerializer(sessions, many=True).data)


class SessionDetailView(APIView):
    permission_classes = [IsAuthenticated, NotBanned]

    @extend_schema(responses={204: None, 404: OpenApiResponse(description="`not_found`"), **ERRORS})
    def delete(self, request: Request, session_id: str) -> Response:
        services.session_revoke(user=request_user(request), session_id=session_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

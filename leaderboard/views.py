"""Leaderboard reads over REST, and the live page."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import NotBanned, account_state_ahead, request_user
from accounts.models import User
from accounts.views import ERRORS
from core.errors import NotFoundError
from core.freshness import board_response
from core.query import query_values
from core.redis_batch import redis_batch
from leaderboard import selectors
from leaderboard.index import PageAhead
from leaderboard.serializers import (
    AroundQuerySerializer,
    AroundSerializer,
    BoardQuerySerializer,
    BoardSerializer,
    MeSerializer,
    UserRankSerializer,
)


def live_page(request: HttpRequest) -> HttpResponse:
    """The live leaderboard page (anonymous visitors welcome).

    `embedded`: the embedded default (`make run`) is a first look on one machine, so its
    page also lets a logged-in player start and complete actions; a real deployment's
    page only watches (its players use the apps).
    """
    return render(request, "leaderboard/live.html", {"embedded": settings.EMBEDDED})


class BoardView(APIView):
    permission_classes = [AllowAny]
    query: dict[str, Any] | None = None
    ahead: PageAhead | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Reads the page and the account state that authenticating a bearer token needs
        in one Redis round trip (core.redis_batch), then authenticates as every view
        does. An invalid query reads nothing ahead: `get` answers it 400, after
        authentication, as before."""
        if request.method in ("GET", "HEAD"):
            with contextlib.suppress(ValidationError):
                self.query = query_values(BoardQuerySerializer, request.GET)
            with redis_batch():
                account_state_ahead(request)
                if self.query is not None:
                    self.ahead = selectors.leaderboard_page_ahead(**self.query)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        parameters=[BoardQuerySerializer],
        responses={200: BoardSerializer, 400: OpenApiResponse(description="`invalid`")},
    )
    def get(self, request: Request) -> Response | HttpResponse:
        query = self.query or query_values(BoardQuerySerializer, request.GET)  # 400 if invalid
        page = selectors.leaderboard_page(**query, ahead=self.ahead)
        return board_response(request, {**page, "generatedAt": timezone.now()})


class MeView(APIView):
    permission_classes = [IsAuthenticated, NotBanned]

    @extend_schema(responses={200: MeSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(selectors.user_profile(user=request_user(request))).data)


class AroundMeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[AroundQuerySerializer],
        responses={
            200: AroundSerializer,
            400: OpenApiResponse(description="`invalid`"),
            401: OpenApiResponse(description="`not_authenticated`"),
        },
    )
    def get(self, request: Request) -> Response:
        query = query_values(AroundQuerySerializer, request.GET)
        return Response(selectors.leaderboard_around(user=request_user(request), **query))


class UserRankView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: UserRankSerializer, 404: OpenApiResponse(description="`not_found`")}
    )
    def get(self, request: Request, user_id: str) -> Response:
        try:
            pk = uuid.UUID(user_id)
        except ValueError as exc:
            raise NotFoundError("User not found.") from exc
        user = User.objects.filter(pk=pk, is_active=True).values("id", "username", "score").first()
        if user is None:
            raise NotFoundError("User not found.")
        found = selectors.leaderboard_rank_and_score(user_id=pk)
        return Response(
            {
                "rank": found[0] if found else None,
                "userId": user["id"],
                "username": user["username"],
                "score": user["score"],
            }
        )

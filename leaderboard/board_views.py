"""Boards and periods over REST: `/api/v1/boards/...` (SPEC "Boards and periods")."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerAuthentication, request_user
from accounts.models import User
from core.errors import ConflictError, NotFoundError
from core.freshness import board_response
from core.query import query_values
from leaderboard import board_reads
from leaderboard.boards import PeriodNotFoundError
from leaderboard.models import Period, Standing
from leaderboard.serializers import (
    BoardAroundQuerySerializer,
    BoardAroundSerializer,
    BoardDetailSerializer,
    BoardEntriesQuerySerializer,
    BoardEntriesSerializer,
    BoardListSerializer,
    BoardPeriodQuerySerializer,
    BoardUserRankSerializer,
    PeriodListSerializer,
    PeriodsQuerySerializer,
)

NOT_FOUND = OpenApiResponse(description="`board_not_found` or `period_not_found`")
BAD_PERIOD = OpenApiResponse(description="`invalid`: a malformed period or query")


class BoardListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="boards_list", responses={200: BoardListSerializer})
    def get(self, request: Request) -> Response:
        return Response(board_reads.boards_list())


class BoardDetailView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: BoardDetailSerializer, 404: NOT_FOUND})
    def get(self, request: Request, slug: str) -> Response:
        return Response(board_reads.board_detail(slug))


class BoardEntriesView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[BoardEntriesQuerySerializer],
        responses={200: BoardEntriesSerializer, 400: BAD_PERIOD, 404: NOT_FOUND},
    )
    def get(self, request: Request, slug: str) -> Response | HttpResponse:
        query = query_values(BoardEntriesQuerySerializer, request.GET)
        named = board_reads.period_named(slug, query["period"])
        page = board_reads.named_page(named, offset=query["offset"], limit=query["limit"])
        return board_response(request, page)


class BoardAroundMeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[BoardAroundQuerySerializer],
        responses={
            200: BoardAroundSerializer,
            400: BAD_PERIOD,
            401: OpenApiResponse(description="`not_authenticated`"),
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        query = query_values(BoardAroundQuerySerializer, request.GET)
        named = board_reads.period_named(slug, query["period"])
        user = request_user(request)
        return Response(board_reads.named_around(named, user=user, radius=query["radius"]))


class BoardUserRankView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[BoardPeriodQuerySerializer],
        responses={200: BoardUserRankSerializer, 400: BAD_PERIOD, 404: NOT_FOUND},
    )
    def get(self, request: Request, slug: str, user_id: str) -> Response:
        query = query_values(BoardPeriodQuerySerializer, request.GET)
        named = board_reads.period_named(slug, query["period"])
        try:
            pk = uuid.UUID(user_id)
        except ValueError as exc:
            raise NotFoundError("User not found.") from exc
        user = User.objects.filter(pk=pk, is_active=True).values("id", "username").first()
        if user is None:
            raise NotFoundError("User not found.")
        found = board_reads.named_rank(named, user_id=pk)
        return Response(
            {
                "board": named.board.slug,
                "period": named.payload(),
                "rank": found[0] if found else None,
                "userId": user["id"],
                "username": user["username"],
                "score": found[1] if found else 0,
            }
        )


class PeriodListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[PeriodsQuerySerializer],
        responses={200: PeriodListSerializer, 400: BAD_PERIOD, 404: NOT_FOUND},
    )
    def get(self, request: Request, slug: str) -> Response:
        query = query_values(PeriodsQuerySerializer, request.GET)
        return Response(
            board_reads.closed_periods(slug, before=query.get("before"), limit=query["limit"])
        )


class _Echo:
    def write(self, value: str) -> str:
        return value


class StandingsCsvView(APIView):
    """Staff only (a bearer token or an admin session): a closed period's standings."""

    authentication_classes = [BearerAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            403: OpenApiResponse(description="`permission_denied`: staff only"),
            404: NOT_FOUND,
            409: OpenApiResponse(description="`period_open`: not closed yet"),
        }
    )
    def get(self, request: Request, slug: str, key: str) -> StreamingHttpResponse:
        named = board_reads.period_named(slug, key)
        period = named.period
        if period is None:
            raise PeriodNotFoundError("The board `global` is never closed.")
        if period.state != Period.State.CLOSED:
            raise PeriodOpenError()
        response = StreamingHttpResponse(
            standings_csv(period), content_type="text/csv; charset=utf-8"
        )
        name = f"{named.board.slug}-{period.key}-r{period.revision}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "private, no-store"
        return response


class PeriodOpenError(ConflictError):
    code = "period_open"
    message = "This period is not closed yet: its standings are not final."


def standings_csv(period: Period) -> Iterator[str]:
    """The current revision's standings as CSV lines, header first."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["rank", "userId", "username", "score", "reachedAt"])
    rows: Any = (
        Standing.objects.filter(period=period, revision=period.revision)
        .order_by("rank")
        .values_list("rank", "user_id", "username", "score", "reached_at")
    )
    for rank, uid, name, score, reached in rows.iterator(5000):
        # A username that starts like a formula is quoted for spreadsheets.
        safe = f"'{name}" if name[:1] in ("=", "+", "-", "@") else name
        yield writer.writerow([rank, uid, safe, score, reached.isoformat()])

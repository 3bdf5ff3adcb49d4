"""Actions API: list action types, start an action, complete it, list completions."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from actions import services
from actions.idempotency import CompletionOutcome, request_fingerprint
from actions.models import ActionType, Completion
from actions.serializers import (
    ActionStartedSerializer,
    ActionTypeSerializer,
    CompleteSerializer,
    CompletionResultSerializer,
    CompletionSerializer,
)
from core import metrics
from core.errors import ApplicationError, InvalidInputError
from core.http import client_ip, user_agent

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

COMPLETE_ERRORS = {
    400: OpenApiResponse(
        description="`invalid`, `token_invalid`, `token_expired`, `token_mismatch`"
    ),
    401: OpenApiResponse(description="`not_authenticated`, `token_invalid`, `token_expired`"),
    403: OpenApiResponse(description="`user_banned`, `fraud_blocked`"),
    404: OpenApiResponse(description="`action_not_found`"),
    409: OpenApiResponse(
        description="`token_replayed`, `too_early`, `cooldown_active`, `daily_cap_reached`, "
        "`action_inactive`, `idempotency_key_reused`, `idempotency_in_progress`"
    ),
    429: OpenApiResponse(description="`rate_limited`, with Retry-After and RateLimit-* headers"),
}


class ActionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = ActionType.objects.active()
    serializer_class = ActionTypeSerializer
    pagination_class = None
    lookup_value_regex = r"[a-z0-9][a-z0-9_-]{0,63}"

    def get_permissions(self) -> list[BasePermission]:
        return [AllowAny()] if self.action == "list" else [IsAuthenticated()]

    @extend_schema(
        request=None,
        responses={
            201: ActionStartedSerializer,
            404: OpenApiResponse(description="`action_not_found`"),
            409: OpenApiResponse(description="`action_inactive`"),
            403: OpenApiResponse(description="`user_banned`"),
        },
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        raw, token, action_type = services.action_start(user=request_user(request), action_id=pk)
        earliest = token.issued_at.timestamp() + action_type.min_duration_seconds
        body = {
            "actionId": action_type.pk,
            "actionToken": raw,
            "expiresAt": token.expires_at,
            "earliestCompletionAt": datetime.fromtimestamp(earliest, tz=UTC),
        }
        return Response(ActionStartedSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=CompleteSerializer,
        responses={200: CompletionResultSerializer, **COMPLETE_ERRORS},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                pattern=r"^[\x21-\x7e]{1,255}$",
                description="retries with the same key and body return the first response",
            )
        ],
    )
    @action(detail=False, methods=["post"])
    def complete(self, request: Request) -> Response:
        try:
            outcome = self._complete(request)
        except ApplicationError as error:
            metrics.completions.labels(error.code).inc()
            raise
        metrics.completions.labels("accepted").inc()
        return Response(outcome.body, status=outcome.status, headers=outcome.headers)

    def _complete(self, request: Request) -> CompletionOutcome:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise InvalidInputError(
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
                details={"fields": {"Idempotency-Key": ["Invalid value."]}},
            )
        serializer = CompleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return services.completion_submit(
            request=services.CompletionRequest(
                user=request_user(request),
                action_id=data["actionId"],
                raw_token=data["actionToken"],
                client_timestamp=data.get("timestamp"),
                ip=client_ip(request),
                user_agent=user_agent(request),
                idempotency_key=key,
                fingerprint=request_fingerprint(dict(request.data)) if key else "",
            )
        )


@extend_schema(
    responses={
        200: CompletionSerializer(many=True),
        400: OpenApiResponse(description="`invalid` limit or offset"),
    }
)
class MyCompletionsView(ListAPIView):
    serializer_class = CompletionSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self) -> QuerySet[Completion]:
        return Completion.objects.filter(user=request_user(self.request)).order_by(
            "-created_at", "-pk"
        )

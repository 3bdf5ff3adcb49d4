from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_OFFSET = 10_000_000


class Pagination(LimitOffsetPagination):
    """`?limit=` (1..100, default 20) and `?offset=`; a malformed value is a 400."""

    default_limit = 20
    max_limit = 100

    def _parse(self, request: Request, name: str, minimum: int, maximum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: ["A valid integer is required."]}) from None
        if not minimum <= value <= maximum:
            raise ValidationError({name: [f"Must be between {minimum} and {maximum}."]})
        return value

    def get_limit(self, request: Request) -> int:
        value = self._parse(request, self.limit_query_param, 1, self.max_limit)
        return self.default_limit if value is None else value

    def get_offset(self, request: Request) -> int:
        value = self._parse(request, self.offset_query_param, 0, MAX_OFFSET)
        return 0 if value is None else value

"""Content negotiation that answers the common case without parsing the Accept header."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

# What nearly every API client sends (or sends nothing): JSON is then the answer.
_ANY_JSON = frozenset({"", "*/*", "application/json", "application/json, */*"})


class JSONFirstNegotiation(DefaultContentNegotiation):
    """With one renderer, JSON, and an Accept header that takes JSON as is, pick it at
    once; any other header (a quality list, a format suffix, the browsable API in
    DEBUG) gets DRF's full negotiation, 406 included."""

    def select_renderer(  # type: ignore[override]  # DRF passes a list (it indexes it)
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        if len(renderers) == 1 and format_suffix is None:
            renderer = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", "").strip()
            override = self.settings.URL_FORMAT_OVERRIDE
            if (
                renderer.media_type == "application/json"
                and accept in _ANY_JSON
                and not (override and request.query_params.get(override))
            ):
                return renderer, renderer.media_type
        chosen: tuple[BaseRenderer, str] = super().select_renderer(
            request, renderers, format_suffix
        )
        return chosen

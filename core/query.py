"""Query strings of the read endpoints, validated without building a serializer per request.

The read views describe their query parameters with a DRF serializer (which also
documents them in the OpenAPI schema). Building and running that serializer costs more
than the rest of a board read, so plain in-range integers are read here against the
serializer's own bounds and defaults; any other value goes through the serializer, which
raises its usual field errors.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

_EMPTY = serializers.empty


@functools.cache
def _integer_bounds(
    serializer_class: type[serializers.Serializer[Any]],
) -> dict[str, tuple[int | None, int | None, Any]] | None:
    """name -> (min, max, default) when every field is an IntegerField, else None."""
    bounds = {}
    for name, field in serializer_class().fields.items():
        if type(field) is not serializers.IntegerField:
            return None
        bounds[name] = (field.min_value, field.max_value, field.default)
    return bounds


def query_values(
    serializer_class: type[serializers.Serializer[Any]], params: Mapping[str, str]
) -> dict[str, Any]:
    """The validated query values; raises the serializer's ValidationError when invalid."""
    bounds = _integer_bounds(serializer_class)
    values: dict[str, Any] = {}
    if bounds is not None:
        for name, (low, high, default) in bounds.items():
            raw = params.get(name)
            if raw is None:
                if default is _EMPTY:
                    break
                values[name] = default
                continue
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
                break
            value = int(raw)
            if (low is not None and value < low) or (high is not None and value > high):
                break
            values[name] = value
        else:
            return values
    query = serializer_class(data=params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)

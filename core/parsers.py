"""The one reader of JSON from clients, for request bodies and WebSocket frames alike.

Strict JSON only (SPEC.md, Conventions): no `NaN` or `Infinity` (nor a number too large
for a float), no key twice in one object, at most MAX_DEPTH levels of nesting. The depth
is measured before decoding, without recursion: Python's decoder recurses once per level
and raises RecursionError (not ValueError) a thousand levels down, which a few kilobytes
of brackets reach.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import IO, Any, NoReturn

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer

MAX_DEPTH = 32

# A JSON string, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JSONDocumentError(ValueError):
    """The text is not strict JSON, or it nests deeper than MAX_DEPTH."""


def _reject_constant(name: str) -> NoReturn:
    raise JSONDocumentError(f"{name} is not a JSON value.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as infinity
        raise JSONDocumentError(f"The number {text[:40]} is out of range.")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        # Which of the values would count is ambiguous: parsers differ (first or last).
        raise JSONDocumentError("An object has the same key more than once.")
    return document


_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def json_too_deep(text: str) -> bool:
    """Whether the arrays and objects of `text` nest deeper than MAX_DEPTH (brackets
    inside strings aside), measured without decoding it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # so few openings cannot nest deeper, whatever their order
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def json_loads(text: str | bytes) -> Any:
    """Decode one strict JSON document (bytes as UTF-8), or raise JSONDocumentError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JSONDocumentError("The text is not valid UTF-8.") from error
    if json_too_deep(text):
        raise JSONDocumentError(f"Nested deeper than {MAX_DEPTH} levels.")
    try:
        return _DECODER.decode(text)
    except JSONDocumentError:
        raise
    except ValueError as error:
        raise JSONDocumentError(str(error)) from error


class JSONParser(BaseParser):
    """DRF's JSON parser, strict and depth-bounded (json_loads): 400 `malformed_request`."""

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw: bytes | str = stream.read()
        try:
            if codecs.lookup(encoding).name != "utf-8":
                raw = raw.decode(encoding) if isinstance(raw, bytes) else raw
            return json_loads(raw)
        except (LookupError, UnicodeDecodeError, JSONDocumentError) as error:
            raise ParseError(f"JSON parse error - {error}") from error

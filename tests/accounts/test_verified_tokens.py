"""Access tokens verified once per process (accounts.tokens): a token seen before is not
decoded again, yet an expired, altered or re-keyed one is refused as before."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts import tokens
from accounts.errors import TokenExpiredError, TokenInvalidError
from accounts.tokens import access_token_for, access_token_verify, verified_access_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty() -> None:
    verified_access_tokens.forget()


def test_a_token_is_decoded_once_and_then_answered_from_memory(alice) -> None:  # type: ignore[no-untyped-def]
    raw = access_token_for(alice)
    with mock.patch.object(tokens, "AccessToken", wraps=AccessToken) as decode:
        first = access_token_verify(raw)
        again = access_token_verify(raw)
    assert decode.call_count == 1
    assert again is first
    assert str(again["user_id"]) == str(alice.pk)


def test_a_remembered_token_is_refused_once_it_expires(alice) -> None:  # type: ignore[no-untyped-def]
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=1))
    raw = str(token)
    assert access_token_verify(raw)["user_id"] == str(alice.pk)
    time.sleep(1.2)
    with pytest.raises(TokenExpiredError):
        access_token_verify(raw)


def test_an_altered_token_is_refused_after_the_original_was_remembered(alice) -> None:  # type: ignore[no-untyped-def]
    raw = access_token_for(alice)
    access_token_verify(raw)
    head, payload, signature = raw.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(TokenInvalidError):
        access_token_verify(forged)


def test_a_change_of_the_jwt_settings_empties_the_memory(alice, settings) -> None:  # type: ignore[no-untyped-def]
    raw = access_token_for(alice)
    access_token_verify(raw)
    assert verified_access_tokens.get(raw) is not None
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "AUDIENCE": "another audience"}
    assert verified_access_tokens.get(raw) is None  # checked again on next use


def test_the_memory_is_bounded(alice) -> None:  # type: ignore[no-untyped-def]
    small = tokens._Verified(size=3)
    for _ in range(7):
        raw = access_token_for(alice) + ""  # a new token each time (new jti)
        small.put(raw, AccessToken(raw))
        assert len(small._tokens) <= 3

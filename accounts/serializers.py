from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import password_validation
from django.db.models.functions import Lower
from rest_framework import serializers

from accounts.errors import EMAIL_TAKEN, USERNAME_TAKEN
from accounts.models import Session, User
from accounts.names import USERNAME_KEY_MAX_LENGTH, email_key, username_key, username_normal

USERNAME_PATTERN = re.compile(r"^[\w.@+-]{3,150}$")
USERNAME_INVALID = "Use 3 to 150 letters, digits and @/./+/-/_ only."


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(
        USERNAME_PATTERN, max_length=150, error_messages={"invalid": USERNAME_INVALID}
    )
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(
        write_only=True, min_length=8, max_length=128, trim_whitespace=False
    )

    def validate_username(self, value: str) -> str:
        """Stored in NFKC; the rules hold for that form (NFKC may change or lengthen it)."""
        value = username_normal(value)
        key = username_key(value)
        if not USERNAME_PATTERN.match(value) or len(key) > USERNAME_KEY_MAX_LENGTH:
            raise serializers.ValidationError(USERNAME_INVALID, code="invalid")
        # The friendly answer; the unique key decides a race (services.user_register).
        if User.objects.filter(username_key=key).exists():
            raise serializers.ValidationError(USERNAME_TAKEN, code="duplicate")
        return value

    def validate_email(self, value: str) -> str:
        value = email_key(value)
        if User.objects.annotate(email_lower=Lower("email")).filter(email_lower=value).exists():
            raise serializers.ValidationError(EMAIL_TAKEN, code="duplicate")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except Exception as exc:  # Django's ValidationError carries the messages
            messages = getattr(exc, "messages", [str(exc)])
            raise serializers.ValidationError({"password": messages}) from exc
        return attrs


class UserSerializer(serializers.ModelSerializer):
    dateJoined = serializers.DateTimeField(source="date_joined")

    class Meta:
        model = User
        fields = ["id", "username", "email", "dateJoined"]


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=2048)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class SessionSerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at")
    userAgent = serializers.CharField(source="user_agent")

    class Meta:
        model = Session
        fields = ["id", "createdAt", "lastUsedAt", "expiresAt", "ip", "userAgent"]

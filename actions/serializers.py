from __future__ import annotations

from rest_framework import serializers

from actions.models import ActionType, Completion


class ActionTypeSerializer(serializers.ModelSerializer):
    cooldownSeconds = serializers.IntegerField(source="cooldown_seconds")
    minDurationSeconds = serializers.IntegerField(source="min_duration_seconds")
    dailyCap = serializers.IntegerField(source="daily_cap", allow_null=True)

    class Meta:
        model = ActionType
        fields = ["id", "name", "reward", "cooldownSeconds", "minDurationSeconds", "dailyCap"]


class ActionStartedSerializer(serializers.Serializer):
    actionId = serializers.CharField()
    actionToken = serializers.CharField()
    expiresAt = serializers.DateTimeField()
    earliestCompletionAt = serializers.DateTimeField()


class CompleteSerializer(serializers.Serializer):
    actionId = serializers.SlugField(max_length=64)
    actionToken = serializers.CharField(max_length=1024)
    timestamp = serializers.DateTimeField(required=False, allow_null=True)


class CompletionResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    completionId = serializers.UUIDField()
    actionId = serializers.CharField()
    delta = serializers.IntegerField()
    newScore = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True)
    flagged = serializers.BooleanField()


class CompletionSerializer(serializers.ModelSerializer):
    completionId = serializers.UUIDField(source="id")
    actionId = serializers.CharField(source="action_id")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Completion
        fields = ["completionId", "actionId", "delta", "flagged", "createdAt"]

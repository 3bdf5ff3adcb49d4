from rest_framework import serializers


class BoardQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    offset = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)


class AroundQuerySerializer(serializers.Serializer):
    radius = serializers.IntegerField(min_value=0, max_value=25, default=5)


class EntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    userId = serializers.UUIDField()
    username = serializers.CharField()
    score = serializers.IntegerField()


class BoardSerializer(serializers.Serializer):
    entries = EntrySerializer(many=True)
    total = serializers.IntegerField()
    version = serializers.IntegerField()
    generatedAt = serializers.DateTimeField()


class MeRankSerializer(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True)
    score = serializers.IntegerField()


class AroundSerializer(serializers.Serializer):
    me = MeRankSerializer()
    entries = EntrySerializer(many=True)


class UserRankSerializer(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True)
    userId = serializers.UUIDField()
    username = serializers.CharField()
    score = serializers.IntegerField()


class MeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    score = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True)
    dateJoined = serializers.DateTimeField()

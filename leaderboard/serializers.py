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


# Boards and periods.


class PeriodSpanSerializer(serializers.Serializer):
    key = serializers.CharField()
    startsAt = serializers.DateTimeField(allow_null=True)
    endsAt = serializers.DateTimeField(allow_null=True)


class PeriodStateSerializer(PeriodSpanSerializer):
    state = serializers.ChoiceField(choices=["open", "closing", "closed"])


class PeriodPageSerializer(PeriodStateSerializer):
    revision = serializers.IntegerField()


class BoardInfoSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    title = serializers.CharField()
    period = serializers.ChoiceField(choices=["all_time", "day", "week", "month", "season"])
    timezone = serializers.CharField()
    weekStartsOn = serializers.IntegerField()
    dayStartsAt = serializers.CharField()
    actionTypes = serializers.ListField(child=serializers.CharField(), allow_null=True)
    startsAt = serializers.DateTimeField(allow_null=True)
    endsAt = serializers.DateTimeField(allow_null=True)
    current = PeriodSpanSerializer(allow_null=True)
    nextResetAt = serializers.DateTimeField(allow_null=True)


class BoardListSerializer(serializers.Serializer):
    boards = BoardInfoSerializer(many=True)
    serverTime = serializers.DateTimeField()


class BoardDetailSerializer(BoardInfoSerializer):
    previous = PeriodStateSerializer(allow_null=True)
    serverTime = serializers.DateTimeField()


PERIOD_HELP = (
    "`current` (default), `previous`, or a period key (2026-03-29, 2026-03, all, a season's slug)"
)


class BoardEntriesQuerySerializer(serializers.Serializer):
    period = serializers.CharField(max_length=40, default="current", help_text=PERIOD_HELP)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    offset = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)


class BoardAroundQuerySerializer(serializers.Serializer):
    period = serializers.CharField(max_length=40, default="current", help_text=PERIOD_HELP)
    radius = serializers.IntegerField(min_value=0, max_value=25, default=5)


class BoardPeriodQuerySerializer(serializers.Serializer):
    period = serializers.CharField(max_length=40, default="current", help_text=PERIOD_HELP)


class PeriodsQuerySerializer(serializers.Serializer):
    before = serializers.CharField(max_length=40, required=False, help_text="a period key")
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)


class BoardEntriesSerializer(serializers.Serializer):
    board = serializers.SlugField()
    period = PeriodPageSerializer()
    entries = EntrySerializer(many=True)
    total = serializers.IntegerField()
    version = serializers.IntegerField()
    generatedAt = serializers.DateTimeField()


class BoardAroundSerializer(AroundSerializer):
    board = serializers.SlugField()
    period = PeriodPageSerializer()


class BoardUserRankSerializer(UserRankSerializer):
    board = serializers.SlugField()
    period = PeriodPageSerializer()


class ClosedPeriodSerializer(PeriodSpanSerializer):
    participants = serializers.IntegerField()
    revision = serializers.IntegerField()
    checksum = serializers.CharField()
    closedAt = serializers.DateTimeField()
    top = EntrySerializer(many=True)


class PeriodListSerializer(serializers.Serializer):
    board = serializers.SlugField()
    periods = ClosedPeriodSerializer(many=True)

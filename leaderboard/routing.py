from django.urls import path

from leaderboard.board_consumers import BoardConsumer
from leaderboard.consumers import LeaderboardConsumer

websocket_urlpatterns = [
    path("ws/leaderboard/", LeaderboardConsumer.as_asgi()),
    path("ws/boards/<slug:slug>/", BoardConsumer.as_asgi()),
]

from django.urls import path

from leaderboard import board_views, views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("leaderboard/", views.BoardView.as_view(), name="leaderboard"),
    path("leaderboard/me/", views.AroundMeView.as_view(), name="leaderboard-me"),
    path("leaderboard/users/<str:user_id>/", views.UserRankView.as_view(), name="leaderboard-user"),
    path("boards/", board_views.BoardListView.as_view(), name="boards"),
    path("boards/<str:slug>/", board_views.BoardDetailView.as_view(), name="board"),
    path(
        "boards/<str:slug>/entries/", board_views.BoardEntriesView.as_view(), name="board-entries"
    ),
    path("boards/<str:slug>/me/", board_views.BoardAroundMeView.as_view(), name="board-me"),
    path(
        "boards/<str:slug>/users/<str:user_id>/",
        board_views.BoardUserRankView.as_view(),
        name="board-user",
    ),
    path("boards/<str:slug>/periods/", board_views.PeriodListView.as_view(), name="board-periods"),
    path(
        "boards/<str:slug>/periods/<str:key>/standings.csv",
        board_views.StandingsCsvView.as_view(),
        name="board-standings",
    ),
]

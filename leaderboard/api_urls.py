from django.urls import path

from leaderboard import views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("leaderboard/", views.BoardView.as_view(), name="leaderboard"),
    path("leaderboard/me/", views.AroundMeView.as_view(), name="leaderboard-me"),
    path("leaderboard/users/<str:user_id>/", views.UserRankView.as_view(), name="leaderboard-user"),
]

from django.urls import path

from leaderboard import views

urlpatterns = [path("", views.live_page, name="live-page")]

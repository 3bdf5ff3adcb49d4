from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def live_page(request: HttpRequest) -> HttpResponse:
    """The live leaderboard page."""
    return render(request, "leaderboard/live.html")

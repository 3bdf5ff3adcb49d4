"""Views that exist only for tests of the shared error handling."""

from django.http import HttpResponse
from django.urls import include, path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from core.errors import ConflictError


@api_view(["POST"])
@permission_classes([AllowAny])
def echo(request: Request) -> Response:
    return Response({"received": request.data})


@api_view(["POST"])
@permission_classes([AllowAny])
def conflict(request: Request) -> Response:
    raise ConflictError("Already done.", details={"hint": "x"})


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request: Request) -> Response:
    raise RuntimeError("boom: internal detail that must not leak")


def crash_plain(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom: internal detail that must not leak")


def form(request):  # type: ignore[no-untyped-def]
    """A plain Django view: a POST to it is checked for a CSRF token."""
    return HttpResponse("posted")


urlpatterns = [
    path("t/echo/", echo),
    path("t/conflict/", conflict),
    path("t/crash/", crash),
    path("t/crash-plain/", crash_plain),
    path("api/t/form/", form),
    path("t/form/", form),
    path("", include("config.urls")),
]

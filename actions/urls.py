from django.urls import path
from rest_framework.routers import SimpleRouter

from actions import views

router = SimpleRouter()
router.register("actions", views.ActionViewSet, basename="actions")

urlpatterns = [
    path("me/completions/", views.MyCompletionsView.as_view(), name="me-completions"),
    *router.urls,
]

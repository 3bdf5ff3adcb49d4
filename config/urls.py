from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scoreboard.views import page_not_found

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("actions.urls")),
    path("", include("leaderboard.api_urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Any other path under /api/ is an API client's mistake: the envelope, in every mode
    # (DEBUG would otherwise answer Django's HTML page).
    re_path(r"^api/", page_not_found, name="api-not-found"),
    path("admin/", admin.site.urls),
    path("", include("leaderboard.urls")),
]

# /healthz and /readyz are answered by scoreboard.middleware.HealthCheckMiddleware.

handler400 = "scoreboard.views.bad_request"
handler403 = "scoreboard.views.permission_denied"
handler404 = "scoreboard.views.page_not_found"
handler500 = "scoreboard.views.server_error"

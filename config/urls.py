from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.views import api_not_found

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("actions.urls")),
    path("", include("leaderboard.api_urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (no inline
    # script); its inline styles need 'unsafe-inline' for styles, on this page only.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema")
        ),
        name="api-docs",
    ),
    # Any other path under /api/ is an API client's mistake: the envelope, in every mode
    # (DEBUG would otherwise answer Django's HTML page).
    re_path(r"^api/", api_not_found, name="api-not-found"),
    path("admin/", admin.site.urls),
    path("", include("leaderboard.urls")),
]

# /healthz and /readyz are answered by core.middleware.HealthCheckMiddleware.

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"

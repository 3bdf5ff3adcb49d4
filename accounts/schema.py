"""OpenAPI description of the project's bearer authentication."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class BearerAuthenticationScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.BearerAuthentication"
    name = "bearerAuth"

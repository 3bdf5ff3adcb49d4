"""Content-Security-Policy: the live page, the admin and the API docs allow only what
they use; no inline script anywhere."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    header = response.headers["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def inline_scripts(html: str) -> list[str]:
    """Executable <script> elements without src (JSON data blocks do not run)."""
    return [
        tag
        for tag in re.findall(r"<script\b[^>]*>", html)
        if "src=" not in tag and "application/json" not in tag
    ]


def test_it_sends_a_strict_policy_with_the_live_page() -> None:
    response = Client().get("/")
    assert response.status_code == 200
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert not inline_scripts(response.content.decode())
    assert "style=" not in response.content.decode()


def test_it_sends_the_policy_with_the_admin(admin_client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/admin/login/", "/admin/", "/admin/fraud/fraudlog/", "/admin/accounts/user/"):
        client = Client() if path == "/admin/login/" else admin_client
        response = client.get(path)
        assert response.status_code == 200, path
        assert policy(response)["script-src"] == ["'self'"], path
        assert not inline_scripts(response.content.decode()), path


def test_it_lets_the_api_docs_use_inline_styles_but_no_inline_script() -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    csp = policy(response)
    assert csp["script-src"] == ["'self'"]
    assert "'unsafe-inline'" in csp["style-src"]
    html = response.content.decode()
    assert not inline_scripts(html)
    script = re.search(r'<script src="([^"]*\?script[^"]*)"', html)
    assert script, html
    assert Client().get(script.group(1).replace("&amp;", "&")).status_code == 200


def _through_middleware(middleware_class, view, path: str = "/api/v1/leaderboard/"):  # type: ignore[no-untyped-def]
    from django.test import RequestFactory

    return middleware_class(view)(RequestFactory().get(path))


def _json_view(request):  # type: ignore[no-untyped-def]
    from django.http import JsonResponse

    return JsonResponse({})


def test_the_policy_built_once_is_the_one_django_csp_builds() -> None:
    from csp.middleware import CSPMiddleware as DjangoCSPMiddleware

    from core.middleware import CSPMiddleware

    ours = _through_middleware(CSPMiddleware, _json_view)
    theirs = _through_middleware(DjangoCSPMiddleware, _json_view)
    assert ours.headers["Content-Security-Policy"] == theirs.headers["Content-Security-Policy"]
    assert "Content-Security-Policy-Report-Only" not in ours.headers


def test_a_changed_setting_changes_the_policy_at_once(settings) -> None:  # type: ignore[no-untyped-def]
    from core.middleware import CSPMiddleware

    before = _through_middleware(CSPMiddleware, _json_view).headers["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY = {
        "EXCLUDE_URL_PREFIXES": ["/excluded/"],
        "DIRECTIVES": {"default-src": ["'none'"]},
    }
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"img-src": ["'self'"]}}
    response = _through_middleware(CSPMiddleware, _json_view)
    assert response.headers["Content-Security-Policy"] == "default-src 'none'" != before
    assert "img-src 'self'" in response.headers["Content-Security-Policy-Report-Only"]
    excluded = _through_middleware(CSPMiddleware, _json_view, "/excluded/page")
    assert "Content-Security-Policy" not in excluded.headers
    assert "Content-Security-Policy-Report-Only" in excluded.headers


def test_a_nonce_or_a_customised_response_goes_through_django_csp(settings) -> None:  # type: ignore[no-untyped-def]
    from csp.constants import NONCE
    from csp.decorators import csp_exempt, csp_update

    from core.middleware import CSPMiddleware

    def uses_nonce(request):  # type: ignore[no-untyped-def]
        from django.http import HttpResponse

        return HttpResponse(f"<script nonce='{request.csp_nonce}'></script>")

    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": ["'self'", NONCE]}}
    response = _through_middleware(CSPMiddleware, uses_nonce)
    nonce = re.search(r"nonce='([^']+)'", response.content.decode()).group(1)  # type: ignore[union-attr]
    assert f"'nonce-{nonce}'" in policy(response)["script-src"]

    updated = _through_middleware(CSPMiddleware, csp_update({"img-src": ["cdn.test"]})(_json_view))
    assert "cdn.test" in policy(updated)["img-src"]
    exempt = _through_middleware(CSPMiddleware, csp_exempt()(_json_view))
    assert "Content-Security-Policy" not in exempt.headers

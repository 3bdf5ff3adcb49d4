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

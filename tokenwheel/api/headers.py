"""Headers on every response: security headers, and CORS when an operator allows a
frontend on another origin (off by default: the pages we serve are same-origin)."""

from __future__ import annotations

from flask import Flask, Response

from tokenwheel.settings import Settings

# Our pages load scripts, styles and images from this origin only; nothing may frame
# them. JSON responses get the same header: harmless, and a JSON body opened as a page
# runs nothing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# What a frontend on another origin may read and send (CORS).
EXPOSED_HEADERS = ["ETag", "Retry-After", "X-Request-ID", "Idempotent-Replayed"]


def init_security_headers(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        # the API docs too: their page (web/docs.html) starts Swagger UI from a file
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response


def init_cors(app: Flask, settings: Settings) -> None:
    """Allow the configured origins to call ``/api/*`` from a browser (flask-cors answers
    preflights). Nothing is sent when no origin is configured."""
    if not settings.cors_origins:
        return
    from flask_cors import CORS

    origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,
        max_age=600,
    )

"""Token Wheel: see a language model's next-token distribution as a wheel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Any = None, **kwargs: Any) -> Flask:
    """Build the Flask application (see :func:`tokenwheel.app.create_app`). Imported
    lazily so that ``import tokenwheel`` stays cheap for the CLI and migrations."""
    from .app import create_app as _create_app

    return _create_app(settings, **kwargs)

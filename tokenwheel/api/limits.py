"""Request limits: body size (413) and request rates per client (429 with Retry-After).

Rates are counted per remote address by flask-limiter, in Redis when
``TOKENWHEEL_REDIS_URL`` is set (so several workers share one count) and in this
process's memory otherwise. A client is an address: a classroom behind one NAT address
is one client, which is why the defaults are generous (docs/operations.md).
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Flask, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from tokenwheel.settings import Settings

from .errors import SHORT_NAMES

# Load balancers poll these; CORS preflights carry no work. Neither counts.
UNLIMITED_ENDPOINTS = frozenset({"health.health", "health.ready"})
CREATE_SESSION_ENDPOINT = "sessions.create_session"
FORK_ENDPOINT = "lab.fork"  # a fork is a new session too (its own hourly count)
# a scored text costs a prefill of up to the prompt limit: as much model time as a new
# session's first wheel, so it has the same hourly budget (its own count)
SCORE_ENDPOINT = "scoring.score"
WHEEL_ENDPOINT = "sessions.next_token_probs"
# At a threshold of 0.1% or more a wheel has at most 1,000 wedges (probabilities add up
# to 1); below it, up to the whole vocabulary: 49,152 tokens (10 MB of JSON, 0.25 s) for
# SmolLM2, 262,144 (56 MB, 2 s) for Gemma 3. The page never asks below 0.1%.
LOW_THRESHOLD = 0.001


def init_limits(app: Flask, settings: Settings) -> Limiter:
    """Set the body-size limit (werkzeug's, behind :class:`.requests.BodyReader`, which
    answers 413 first) and install the rate limiter. Call after the blueprints
    are registered: the sessions-per-hour limit wraps the create-session view."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    limiter = Limiter(
        get_remote_address,
        app=app,
        application_limits=[settings.rate_limit] if settings.rate_limit else [],
        storage_uri=settings.redis_url or "memory://",
        key_prefix=settings.redis_prefix,
        strategy="fixed-window",
        headers_enabled=False,  # Retry-After goes on 429s only, set below
        # A Redis outage must not fail requests: count in memory until it is back.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )

    @limiter.request_filter
    def _not_counted() -> bool:
        return request.method == "OPTIONS" or request.endpoint in UNLIMITED_ENDPOINTS

    if settings.sessions_per_hour > 0:
        for endpoint, did in (
            (CREATE_SESSION_ENDPOINT, "created {} sessions"),
            (FORK_ENDPOINT, "forked {} sessions"),
            (SCORE_ENDPOINT, "scored {} texts"),
        ):
            view: Any = app.view_functions[endpoint]
            app.view_functions[endpoint] = limiter.limit(
                f"{settings.sessions_per_hour}/hour",
                methods=["POST"],
                override_defaults=False,
                error_message=(
                    f"This address {did.format(settings.sessions_per_hour)} in the last "
                    "hour, the most allowed."
                ),
            )(view)

    if settings.low_threshold_rate_limit:
        wheel: Any = app.view_functions[WHEEL_ENDPOINT]
        app.view_functions[WHEEL_ENDPOINT] = limiter.limit(
            settings.low_threshold_rate_limit,
            override_defaults=False,
            exempt_when=lambda: not _asks_low_threshold(),
            error_message=(
                f"Wheels with a threshold below {LOW_THRESHOLD:.1%} list up to the whole "
                f"vocabulary; this address asked for more than "
                f"{settings.low_threshold_rate_limit} of them."
            ),
        )(wheel)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> Any:
        current = limiter.current_limit
        wait = math.ceil(current.window.reset_time - time.time()) if current else 1
        retry_after = max(1, wait)
        if getattr(error.limit, "error_message", None):
            what = error.description
        else:
            what = f"This address sent more requests than allowed ({error.description})."
        body = {"error": SHORT_NAMES[429], "message": f"{what} Try again in {retry_after} s."}
        return jsonify(body), 429, {"Retry-After": str(retry_after)}

    return limiter


def _asks_low_threshold() -> bool:
    """The query's threshold is below LOW_THRESHOLD (a value that is not a number is left
    to the view, which answers 400)."""
    try:
        return float(request.args.get("threshold", "1")) < LOW_THRESHOLD
    except ValueError:
        return False

"""Health checks for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from . import schemas as s
from .blueprint import Blueprint
from .errors import READY_RETRY_AFTER
from .services import maintenance

blp = Blueprint(
    "health", __name__, url_prefix="/api", description="Health checks.", rate_limited=False
)


@blp.route("/health", methods=["GET"])
@blp.response(200, s.HealthSchema)
def health() -> dict[str, Any]:
    """Is the process up?

    Always 200 while the process answers HTTP (a liveness probe). Never rate limited.
    """
    return {"status": "ok"}


@blp.route("/ready", methods=["GET"])
@blp.response(200, s.ReadinessSchema)
@blp.alt_response(
    503, schema=s.NotReadySchema, description="A check failed; `checks` says which and why."
)
def ready() -> Any:
    """Can this process serve students?

    200 when the database answers and the effective default model is loaded (a
    readiness probe: route students here only then). Asking never loads a model; a
    server loads the default model in the background as it starts. Never rate limited.
    """
    readiness = maintenance().readiness()
    body: dict[str, Any] = {
        "status": "ready" if readiness.ready else "not ready",
        "checks": readiness.checks,
        "default_model": readiness.default_model,
    }
    if readiness.ready:
        return body
    failed = ", ".join(name for name, value in readiness.checks.items() if value != "ok")
    body.update(error="Not ready", message=f"Not ready: {failed}.")
    return jsonify(s.NotReadySchema().dump(body)), 503, {"Retry-After": str(READY_RETRY_AFTER)}

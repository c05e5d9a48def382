"""The model catalog as students see it."""

from __future__ import annotations

from typing import Any

from . import schemas as s
from .blueprint import Blueprint
from .services import maintenance

blp = Blueprint("models", __name__, url_prefix="/api/models", description="Language models.")


@blp.route("", methods=["GET"])
@blp.response(200, s.ModelsSchema)
@blp.alt_response(503, schema=s.ApiErrorSchema, description="No model can load on this machine.")
def list_models() -> dict[str, Any]:
    """List models

    Every catalog model with whether it can load here now (`available`, and `reason`
    when not). Exactly one has `default: true`: the model `POST /api/sessions` uses when
    none is named. When the configured default cannot load (for example a Hub model on a
    machine without internet), `default_reason` says which model serves instead and why.
    """
    result = maintenance().list_models()
    return {
        "models": [
            {
                "id": m.id,
                "name": m.name,
                "description": m.description,
                "parameters": m.parameters,
                "default": m.id == result.default_model,
                "available": m.available,
                "loaded": m.loaded,
                "source": m.source,
                "reason": m.reason,
                "vocabulary_size": m.vocabulary_size,
                "max_context": m.max_context,
                "dtype": m.dtype,
                "engine": m.engine,
                "max_abs_dp_vs_float32": m.max_abs_dp_vs_float32,
            }
            for m in result.models
        ],
        "default_model": result.default_model,
        "configured_default_model": result.configured_default_model,
        "default_reason": result.default_reason,
    }

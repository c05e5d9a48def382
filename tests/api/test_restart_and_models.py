"""State survives a restart; the catalog is honest about the default model."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.api.conftest import BUNDLED, Student, make_app
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.settings import Settings


def test_restart_on_the_same_database_returns_the_same_state(
    settings: Settings, registry: ModelRegistry
) -> None:
    first = make_app(settings, registry)
    # seeded: the draw from Other decides whether the text after it has any wedge at all
    s = Student(first.test_client(), seed=11)
    s.prompt("Knock knock. Who's")
    s.append(category="other")
    s.append(token_text=" there")
    s.undo()
    s.append(token_id=s.probs()["above_threshold_tokens"][0]["token_id"])
    before = s.state()
    first.extensions["tokenwheel.engine"].dispose()

    second = make_app(settings, registry).test_client()
    r = second.get(s.url)
    assert r.status_code == 200
    after = r.json
    assert {k: v for k, v in after.items() if k != "last_accessed"} == {
        k: v for k, v in before.items() if k != "last_accessed"
    }
    assert after["last_accessed"] >= before["last_accessed"]


def test_models_lists_the_catalog_with_one_default(client: FlaskClient) -> None:
    r = client.get("/api/models")
    assert r.status_code == 200
    body = r.json
    models = {m["id"]: m for m in body["models"]}
    assert {"gpt2", "smollm2-135m"} <= set(models)
    for m in models.values():
        assert {"id", "name", "description", "parameters", "default"} <= set(m)
    assert [m["id"] for m in body["models"] if m["default"]] == [BUNDLED]
    assert body["configured_default_model"] == "gpt2"
    assert body["default_model"] == BUNDLED
    assert "gpt2" in body["default_reason"] and BUNDLED in body["default_reason"]
    assert models["gpt2"]["available"] is False and models["gpt2"]["reason"]
    assert models[BUNDLED]["available"] is True and models[BUNDLED]["loaded"] is True
    assert models[BUNDLED]["vocabulary_size"] == 49152
    # by default every model runs in float32 torch (the quantized engine is opt-in)
    assert {(m["engine"], m["max_abs_dp_vs_float32"]) for m in models.values()} == {("torch", 0.0)}
    # the default is what a session gets when no model is named
    r = client.post("/api/sessions", json={})
    assert r.json["model_name"] == body["default_model"]


# the only student routes that never ask the model
MODEL_FREE = {
    ("get", "/api/sessions/{session_id}/statistics"),
    ("delete", "/api/sessions/{session_id}"),
}


def test_openapi_documents_every_endpoint_and_error(client: FlaskClient, tmp_path: Path) -> None:
    spec = client.get("/api/openapi.json").json
    expected = {
        ("post", "/api/sessions"),
        ("get", "/api/sessions/{session_id}"),
        ("delete", "/api/sessions/{session_id}"),
        ("post", "/api/sessions/{session_id}/set-prompt"),
        ("get", "/api/sessions/{session_id}/next-token-probs"),
        ("post", "/api/sessions/{session_id}/append-token"),
        ("post", "/api/sessions/{session_id}/undo"),
        ("post", "/api/sessions/{session_id}/spin"),
        ("get", "/api/models"),
        ("get", "/api/sessions/{session_id}/statistics"),
    }
    found = {(m, p) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    assert expected <= found
    for method, path in expected:
        op = spec["paths"][path][method]
        assert op.get("summary") and op.get("description"), (method, path)
        codes = set(op["responses"])
        assert codes & {"200", "201"}
        if "{session_id}" in path:
            assert "404" in codes, (method, path)
        if method == "post" and path != "/api/sessions/{session_id}/undo":
            assert "400" in codes, (method, path)
        if method == "post":  # any body can be too large, or not JSON
            assert {"413", "415"} <= codes, (method, path)
        if (method, path) not in MODEL_FREE:  # the model's queue can be full, or the model gone
            assert "503" in codes, (method, path)
        if "422" in codes:  # a reused Idempotency-Key; validation errors are 400
            assert "Idempotency-Key" in op["responses"]["422"]["description"], (method, path)
    params = {
        p["name"]
        for p in spec["paths"]["/api/sessions/{session_id}/next-token-probs"]["get"]["parameters"]
    }
    assert {"threshold", "temperature", "other_top_k"} <= params
    # the wheel's token lists are sent as built, and still documented item by item
    schemas = spec["components"]["schemas"]
    wheel = schemas["NextTokenProbs"]["properties"]
    samples = schemas["OtherCategory"]["properties"]["sample_tokens"]
    for listed in (wheel["above_threshold_tokens"], samples):
        assert listed["type"] == "array"
        assert listed["items"]["$ref"].endswith("/TokenProbability")
    spin = spec["components"]["schemas"]["SpinResponse"]["properties"]
    assert {"draw", "angle", "landed", "appended_token", "current_text"} <= set(spin)
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b"/api/docs-assets/swagger-ui-bundle.js" in docs.data
    docs.close()
    asset = client.get("/api/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000
    asset.close()

"""Catalog, loading, caches, limits and honest availability."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tests.conftest import BUNDLED, MODEL_CACHE
from tests.models.conftest import TINY, tiny_spec
from tests.threads import at_once
from tokenwheel.inference import loading
from tokenwheel.inference.cpu import check_dtype
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.types import InferenceOptions, UnsupportedDtypeError
from tokenwheel.settings import Settings, SettingsError


def tiny_registry(folder: Path, **kw: object) -> ModelRegistry:
    return ModelRegistry(
        InferenceOptions(
            cache_dir=str(MODEL_CACHE), offline=True, extra_models=(tiny_spec(folder),), **kw
        )
    )  # type: ignore[arg-type]


def test_gpt2_architecture_code_paths(tiny_gpt2_folder: Path, settings: Settings) -> None:
    from transformers.pytorch_utils import Conv1D

    registry = tiny_registry(tiny_gpt2_folder)
    try:
        model = registry.get(TINY)
        assert isinstance(model.model.transformer.h[0].attn.c_attn, Conv1D)
        assert model.max_context == 1024
        app = make_app(
            settings.with_overrides(max_prompt_tokens=2000, max_prompt_chars=10000), registry
        )
        client = app.test_client()
        s = Student(client, TINY)
        words = " ".join(["cat"] * 1023)
        assert s.prompt("cat" + " cat" * 1022)["token_count"] == 1023  # no BOS
        d = s.probs(threshold=0.0, other_top_k=0)
        assert len(d["above_threshold_tokens"]) == d["vocabulary_size"] == 49152
        s.append(token_id=5)  # 1024 tokens: the window is full
        r = client.get(f"{s.url}/next-token-probs")
        assert r.status_code == 400 and "1024" in r.json["message"]
        r = client.post(f"{s.url}/append-token", json={"token_id": 5})
        assert r.status_code == 400 and "context window" in r.json["message"]
        r = client.post(f"{s.url}/set-prompt", json={"prompt": words + " cat"})
        assert r.status_code == 400 and "1023" in r.json["message"]
        s.undo()  # back under the window: the wheel turns again
        assert s.probs()["vocabulary_size"] == 49152
    finally:
        registry.shutdown()


def test_concurrent_first_use_loads_once(tiny_gpt2_folder: Path) -> None:
    registry = tiny_registry(tiny_gpt2_folder)
    got: list[object] = []
    at_once(8, lambda _: got.append(registry.get(TINY)), timeout=120)
    assert len(got) == 8 and all(m is got[0] for m in got)
    assert registry.load_count == {TINY: 1}
    registry.shutdown()


def test_memory_budget_unloads_the_least_recently_used(tiny_gpt2_folder: Path) -> None:
    second = tiny_spec(tiny_gpt2_folder, "gpt2-tiny-2")
    registry = ModelRegistry(
        InferenceOptions(
            cache_dir=str(MODEL_CACHE),
            offline=True,
            extra_models=(tiny_spec(tiny_gpt2_folder), second),
            memory_budget_bytes=40_000_000,
        )
    )  # one tiny model (about 29 MB) fits, two do not
    try:
        registry.get(TINY)
        registry.logits(TINY, [1, 2, 3])
        registry.get("gpt2-tiny-2")
        assert not registry.loaded(TINY) and registry.loaded("gpt2-tiny-2")
        cached = registry.local_wheels.cache._entries
        assert all(key[0] != TINY for key in cached)  # its caches went too
        assert TINY not in registry.engine._caches
        info = {m.id: m for m in registry.describe()}
        assert info[TINY].loaded is False and info["gpt2-tiny-2"].loaded is True
        registry.get(TINY)  # loads again when asked
        assert registry.load_count[TINY] == 2
    finally:
        registry.shutdown()


def test_converted_weights_cache(tmp_path: Path) -> None:
    """The first load dequantizes GGUF and caches safetensors; the second load reads the
    cache (no GGUF work) and gives identical logits. A half-written cache is ignored."""
    options = InferenceOptions(cache_dir=str(tmp_path), offline=True)
    first = ModelRegistry(options)
    ids = first.get(BUNDLED).encode_prompt("The cat sat on the")
    logits = first.logits(BUNDLED, ids)
    assert first.loaded_from_cache[BUNDLED] is False
    [cached] = (tmp_path / "weights").iterdir()
    assert (cached / "COMPLETE").exists() and (cached / "model.safetensors").exists()
    first.shutdown()

    second = ModelRegistry(options)
    assert torch.equal(second.logits(BUNDLED, ids), logits)
    assert second.loaded_from_cache[BUNDLED] is True
    second.shutdown()

    # a crash mid-write: the folder exists without its COMPLETE marker
    (cached / "COMPLETE").unlink()
    (cached / "model.safetensors").write_bytes(b"half")
    third = ModelRegistry(options)
    assert torch.equal(third.logits(BUNDLED, ids), logits)
    assert third.loaded_from_cache[BUNDLED] is False
    third.shutdown()


def test_hub_model_without_network_fails_fast_with_reason(
    settings: Settings, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_answers(address: object, timeout: float | None = None) -> socket.socket:
        time.sleep(30)
        raise OSError("no route")

    monkeypatch.setattr(loading.socket, "create_connection", never_answers)
    online = ModelRegistry(
        InferenceOptions(cache_dir=str(MODEL_CACHE), offline=False, hub_timeout=0.5)
    )
    started = time.monotonic()
    ok, reason = online.availability("distilgpt2")
    assert not ok and "did not answer within 0.5 s" in (reason or "")
    assert time.monotonic() - started < 5  # bounded by hub_timeout, never a hang
    app = make_app(settings, online)
    r = app.test_client().post("/api/sessions", json={"model_name": "gpt2-medium"})
    assert r.status_code == 503
    assert "gpt2-medium" in r.json["message"] and "did not answer" in r.json["message"]
    online.shutdown()


def test_one_hub_probe_serves_every_hub_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing the four Hub models asks the network once, not four times (each probe
    can cost the whole hub timeout when packets are dropped)."""
    from tokenwheel.inference import availability as availability_module

    probes: list[float] = []

    def unreachable(timeout: float) -> str:
        probes.append(timeout)
        return "huggingface.co cannot be looked up (no network or no DNS)"

    monkeypatch.setattr(availability_module, "probe_hub", unreachable)
    online = ModelRegistry(InferenceOptions(cache_dir=str(MODEL_CACHE), offline=False))
    infos = {m.id: m for m in online.describe()}
    hub = [m for m in infos.values() if m.source == "hub"]
    assert len(hub) == 4 and not any(m.available for m in hub)
    assert all("cannot be looked up" in (m.reason or "") for m in hub)
    assert probes == [3.0]
    online.shutdown()


def test_hub_downloads_are_bounded_by_the_hub_timeout() -> None:
    """huggingface_hub's own waits (10 s by default) follow TOKENWHEEL_HUB_TIMEOUT."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT
    try:
        loading.bound_hub_timeouts(2.0)
        assert constants.HF_HUB_ETAG_TIMEOUT == 2.0
        assert constants.HF_HUB_DOWNLOAD_TIMEOUT == 10.0  # a moving download is not cut
    finally:
        constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT = saved


def test_loading_a_model_never_stops_the_others(
    tiny_gpt2_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load takes seconds (a GGUF conversion up to 40 s): it must not hold the model
    thread, or every student of every other model would wait for it."""
    from tokenwheel.inference import engine as engine_module

    slow = tiny_spec(tiny_gpt2_folder, "gpt2-tiny-slow")
    registry = ModelRegistry(
        InferenceOptions(
            cache_dir=str(MODEL_CACHE),
            offline=True,
            extra_models=(tiny_spec(tiny_gpt2_folder), slow),
        )
    )
    registry.get(TINY)
    release = threading.Event()
    real_load = engine_module.load_pretrained

    def slow_load(spec, options, dtype):  # type: ignore[no-untyped-def]
        if spec.id == slow.id:
            release.wait(60)
        return real_load(spec, options, dtype)

    monkeypatch.setattr(engine_module, "load_pretrained", slow_load)
    loader = threading.Thread(target=registry.get, args=(slow.id,))
    loader.start()
    try:
        time.sleep(0.2)  # the slow load is under way
        answered = threading.Event()
        threading.Thread(
            target=lambda: (registry.logits(TINY, [5, 6, 7]), answered.set()), daemon=True
        ).start()
        assert answered.wait(30), "a forward pass waited for another model's load"
        assert not registry.loaded(slow.id)
    finally:
        release.set()
        loader.join(60)
        registry.shutdown()
    assert registry.loaded(slow.id)


def test_a_model_that_fails_to_load_is_unavailable_and_not_retried_at_once(
    tmp_path: Path, settings: Settings
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "gpt2", "n_layer": "many"}')
    registry = ModelRegistry(
        InferenceOptions(
            cache_dir=str(MODEL_CACHE),
            offline=True,
            extra_models=(tiny_spec(broken, "broken"),),
        )
    )
    try:
        assert registry.availability("broken") == (True, None)  # the folder is there
        client = make_app(settings, registry).test_client()
        r = client.post("/api/sessions", json={"model_name": "broken"})
        assert r.status_code == 503 and "broken failed to load" in r.json["message"]
        started = time.monotonic()
        r = client.post("/api/sessions", json={"model_name": "broken"})
        assert r.status_code == 503 and time.monotonic() - started < 1
        listed = {m["id"]: m for m in client.get("/api/models").json["models"]}
        assert listed["broken"]["available"] is False
        assert "failed to load" in listed["broken"]["reason"]
        assert registry.load_count.get("broken") is None
    finally:
        registry.shutdown()


def test_models_list_the_window_they_are_served_with() -> None:
    """TOKENWHEEL_MAX_CONTEXT lowers every model's window, loaded or not."""
    capped = ModelRegistry(
        InferenceOptions(cache_dir=str(MODEL_CACHE), offline=True, max_context=256)
    )
    windows = {m.id: m.max_context for m in capped.describe()}
    assert windows["gpt2"] == 256 and windows["gemma-3-270m"] == 256
    assert capped.get(BUNDLED).max_context == 256
    assert {m.id: m.max_context for m in capped.describe()}[BUNDLED] == 256
    capped.shutdown()


def test_unknown_model_is_400_and_catalog_lists_six(client: FlaskClient) -> None:
    r = client.post("/api/sessions", json={"model_name": "nope"})
    assert r.status_code == 400
    models = client.get("/api/models").json["models"]
    assert [m["id"] for m in models] == [
        "gpt2",
        "gpt2-medium",
        "gpt2-large",
        "distilgpt2",
        "smollm2-135m",
        "gemma-3-270m",
    ]
    sources = {m["id"]: m["source"] for m in models}
    assert sources["gpt2"] == "hub" and sources["gemma-3-270m"] == "bundled"
    assert all(m["max_context"] for m in models)


def test_operator_adds_a_local_model_through_settings(
    tiny_gpt2_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tokenwheel import create_app

    env = {
        "TOKENWHEEL_EXTRA_MODELS": f'[{{"id": "classroom-gpt2", "source": "local", '
        f'"local_path": "{tiny_gpt2_folder}", "parameters": "7M"}}]',
        "TOKENWHEEL_INSTANCE_PATH": str(tmp_path),
        "TOKENWHEEL_OFFLINE": "1",
        "TOKENWHEEL_SCHEDULER": "0",
        "TOKENWHEEL_PRELOAD": "classroom-gpt2",
    }
    settings = Settings.from_env(env)
    assert settings.preload == ("classroom-gpt2",)
    app = create_app(settings)
    registry = app.extensions["tokenwheel.models"]
    deadline = time.monotonic() + 60
    while not registry.loaded("classroom-gpt2") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert registry.loaded("classroom-gpt2")  # preloaded at start-up
    models = {m["id"]: m for m in app.test_client().get("/api/models").json["models"]}
    assert models["classroom-gpt2"]["source"] == "local"
    assert models["classroom-gpt2"]["available"] and models["classroom-gpt2"]["loaded"]
    registry.shutdown()


@pytest.mark.parametrize(
    "bad",
    [
        '{"id": "x"}',
        '[{"id": "x", "source": "ftp"}]',
        '[{"id": "x", "source": "hub"}]',
        "not json",
        '[{"id": "x", "source": "local", "local_path": "/a", "y": 1}]',
    ],
)
def test_bad_extra_models_are_refused_at_start(bad: str) -> None:
    with pytest.raises(SettingsError, match="TOKENWHEEL_EXTRA_MODELS"):
        Settings.from_env({"TOKENWHEEL_EXTRA_MODELS": bad})


def test_bfloat16_refused_without_native_support() -> None:
    with pytest.raises(UnsupportedDtypeError, match="avx512_bf16"):
        check_dtype("bfloat16", cpuinfo="flags : fpu sse avx2")
    assert check_dtype("bfloat16", cpuinfo="flags : avx512f avx512_bf16") == torch.bfloat16
    assert check_dtype("float32", cpuinfo="") == torch.float32
    with pytest.raises(SettingsError):
        Settings.from_env({"TOKENWHEEL_DTYPE": "float16"})

"""Selecting the quantized engine per model, without llama.cpp or a model loaded: a
model selected for it with llama-cpp-python missing is unavailable with the reason (it
is never served in float32 behind the operator's back), a model without a GGUF file
cannot be selected, and every other model keeps the torch engine."""

from __future__ import annotations

import pytest

from tokenwheel.inference import quantized
from tokenwheel.inference.availability import ModelAvailability
from tokenwheel.inference.catalog import CATALOG, QUANTIZED_DEFAULT_MAX_DP, quantized_by_default
from tokenwheel.inference.types import InferenceOptions, UnknownModelError


def catalog(*selected: str) -> ModelAvailability:
    options = InferenceOptions(cache_dir="/nonexistent", offline=True, quantized_models=selected)
    return ModelAvailability(options, loaded=lambda _: False)


def test_without_llama_cpp_a_selected_model_is_unavailable_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quantized, "LLAMA_PACKAGE", "no_such_package_llama_cpp")
    models = catalog("smollm2-135m")
    ok, reason = models.availability("smollm2-135m")
    assert not ok and reason is not None
    assert "llama-cpp-python" in reason and "make install-quantized" in reason
    assert models.availability("gemma-3-270m")[0]  # not selected: torch, as before
    infos = {i.id: i for i in models.describe({})}
    assert infos["smollm2-135m"].engine == "llama.cpp" and not infos["smollm2-135m"].available
    assert infos["gemma-3-270m"].engine == "torch"


def test_a_model_without_a_gguf_file_cannot_be_selected() -> None:
    with pytest.raises(UnknownModelError, match="no GGUF file"):
        catalog("gpt2")
    with pytest.raises(UnknownModelError, match="Unknown model"):
        catalog("no-such-model")


def test_no_catalog_model_runs_quantized_by_default() -> None:
    """Each GGUF model's measured deviation is above the rule's 1e-3."""
    for spec in CATALOG:
        if spec.gguf_file:
            assert spec.quantized_max_dp is not None
            assert spec.quantized_max_dp > QUANTIZED_DEFAULT_MAX_DP
            assert not quantized_by_default(spec)

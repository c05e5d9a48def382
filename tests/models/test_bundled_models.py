"""Both bundled models from their packages, offline: invariants, tokens, context, BOS."""

from __future__ import annotations

import math

import pytest
import torch
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tests.conftest import BUNDLED, GEMMA, MODEL_CACHE
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.types import InferenceOptions
from tokenwheel.settings import Settings


def test_gemma_seed_flow_and_invariants(
    client: FlaskClient, gemma: str, registry: ModelRegistry
) -> None:
    s = Student(client, gemma)
    r = s.prompt("The cat sat on the")
    tok = registry.get(gemma).tokenizer
    ids = tok("The cat sat on the")["input_ids"]
    assert ids[0] == tok.bos_token_id  # Gemma adds BOS; the model sees it
    assert r["token_count"] == len(ids) == 6
    d = s.probs(threshold=0.01)
    assert d["vocabulary_size"] == 262144 == len(tok)
    head, tail = d["above_threshold_tokens"], d["other_category"]
    assert len(head) + tail["token_count"] == d["vocabulary_size"]
    assert math.isclose(
        d["total_above_threshold_probability"] + tail["total_probability"], 1, abs_tol=1e-9
    )
    other = s.append(category="other")
    assert other["appended_token"]["sampled_from_other"]
    s.undo()
    again = s.probs(threshold=0.01)
    assert again.pop("version") > d.pop("version")  # two more events, same distribution
    assert again == d
    top = head[0]
    r = s.append(token_id=top["token_id"])
    assert r["current_text"] == "The cat sat on the" + top["token_text"]
    assert r["appended_token"]["probability"] == top["probability"]


def test_gpt2_style_prompt_has_no_bos(student: Student, registry: ModelRegistry) -> None:
    r = student.prompt("The cat sat on the")
    assert r["token_count"] == 5  # SmolLM2, like GPT-2, adds no BOS


def test_display_text_whitespace_partial_utf8_and_specials(
    student: Student, registry: ModelRegistry
) -> None:
    m = registry.get(BUNDLED)
    student.prompt("Say")
    newline = m.token_id_for_text("\n")
    emoji = m.tokenizer(" 😀", add_special_tokens=False)["input_ids"]
    for token_id in [m.token_id_for_text(" mat"), newline, *emoji]:
        student.append(token_id=token_id)
    history = student.state()["token_history"]
    assert history[0]["display_text"] == "·mat" and not history[0]["partial_utf8"]
    assert history[1]["display_text"] == "↵"
    partial = [h for h in history[2:] if h["partial_utf8"]]
    assert partial, history[2:]
    for h in partial:
        assert h["token_text"].endswith("\ufffd")
        assert h["display_text"].startswith("⟨") and h["display_text"].endswith("⟩")
    assert student.state()["current_text"] == "Say mat\n 😀"  # whole characters
    d = student.probs(threshold=0.0, other_top_k=0)
    assert all("display_text" in t for t in d["above_threshold_tokens"][:50])


def test_end_of_sequence_can_be_appended_and_is_reported(
    student: Student, registry: ModelRegistry
) -> None:
    m = registry.get(BUNDLED)
    eos = m.tokenizer.eos_token_id
    student.prompt("Hello")
    r = student.append(token_id=eos)
    token = r["appended_token"]
    assert token["end_of_sequence"] is True and token["special"] is True
    assert token["display_text"] == m.tokenizer.convert_ids_to_tokens(eos)
    assert r["current_text"].startswith("Hello")
    probs = student.probs(threshold=0.0, other_top_k=0)  # the wheel still turns after EOS
    eos_entry = next(t for t in probs["above_threshold_tokens"] if t["token_id"] == eos)
    assert eos_entry["end_of_sequence"] is True


def test_gemma_undo_past_the_sliding_window(
    settings: Settings, gemma: str, registry: ModelRegistry
) -> None:
    """Gemma 3's local layers see 512 tokens; a context past 512 followed by undo must give
    exactly the distribution of a fresh forward pass on the ids."""
    from tests.api.conftest import make_app

    app = make_app(settings.with_overrides(max_prompt_tokens=600), registry)
    s = Student(app.test_client(), gemma)
    prompt = " ".join(f"w{i}" for i in range(150))
    count = s.prompt(prompt)["token_count"]
    assert 470 < count <= 512
    while count <= 520:
        s.append(token_id=s.probs()["above_threshold_tokens"][0]["token_id"])
        count += 1
    for _ in range(15):  # back below 512 and above again
        s.undo()
    state = s.state()
    ids = registry.get(gemma).encode_prompt(prompt) + [
        t["token_id"] for t in state["token_history"]
    ]
    served = s.probs(threshold=0.0, other_top_k=0)["above_threshold_tokens"]
    got = torch.zeros(262144, dtype=torch.float64)
    for t in served:
        got[t["token_id"]] = t["probability"]
    with torch.inference_mode():
        logits = registry.get(gemma).model(input_ids=torch.tensor([ids])).logits[0, -1]
    expected = torch.softmax(logits[:262144].double(), -1)
    assert float((got - expected).abs().max()) <= 1e-4


# max |dp| allowed per model. Measured with transformers 5.24 on this machine's three
# prompts: SmolLM2 0.008-0.020; Gemma 3 0.003-0.072 (its top token after "The quick brown
# fox jumps over the" moves by 0.072 in bfloat16, which is why float32 is the default).
BF16_MAX_DP = {BUNDLED: 0.05, GEMMA: 0.10}


@pytest.mark.parametrize("model_id", [BUNDLED, GEMMA])
def test_bfloat16_stays_within_tolerance_of_float32(
    model_id: str, registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Stated tolerance: the same most likely token; at least 4 of float32's top 5 in
    bfloat16's top 5; among float32's top 5, tokens more than 0.03 apart keep their order;
    max |dp| over the whole vocabulary within ``BF16_MAX_DP`` (0.05 SmolLM2, 0.10 Gemma)."""
    from tests.conftest import MODEL_CACHE
    from tokenwheel.inference.cpu import bf16_supported
    from tokenwheel.inference.types import InferenceOptions

    if not bf16_supported():
        pytest.skip("this CPU has no native bfloat16 (avx512_bf16 or AMX)")
    bf16 = ModelRegistry(
        InferenceOptions(cache_dir=str(MODEL_CACHE), offline=True, dtype="bfloat16")
    )
    try:
        fp32_model = registry.get(model_id)
        bf16_model = bf16.get(model_id)
        assert bf16_model.dtype == "bfloat16" and fp32_model.dtype == "float32"
        for prompt in [
            "The quick brown fox jumps over the",
            "Once upon a time",
            "def add(a, b):\n    return",
        ]:
            ids = fp32_model.encode_prompt(prompt)
            p32 = torch.softmax(registry.logits(model_id, ids).double(), -1)
            p16 = torch.softmax(bf16.logits(model_id, ids).double(), -1)
            top = p32.topk(5).indices.tolist()
            assert top[0] == int(p16.argmax()), prompt
            assert len(set(top) & set(p16.topk(5).indices.tolist())) >= 4, prompt
            for i, a in enumerate(top):
                for b in top[i + 1 :]:
                    if p32[a] - p32[b] > 0.03:
                        assert p16[a] > p16[b], (prompt, a, b)
            assert float((p32 - p16).abs().max()) <= BF16_MAX_DP[model_id], prompt
    finally:
        bf16.shutdown()


def test_gemma_loads_again_from_its_converted_weights(gemma: str, registry: ModelRegistry) -> None:
    """Gemma's file is assembled from four chunk packages and dequantized once; a second
    process (here: a second registry on the same cache) loads the converted safetensors,
    skips the conversion, and computes identical logits."""
    again = ModelRegistry(InferenceOptions(cache_dir=str(MODEL_CACHE), offline=True))
    try:
        ids = registry.get(gemma).encode_prompt("The quick brown fox")
        assert again.get(gemma) is not registry.get(gemma)
        assert again.loaded_from_cache[gemma] is True
        # full forward passes: neither registry's caches
        assert torch.equal(again.get(gemma).logits(ids), registry.get(gemma).logits(ids))
    finally:
        again.shutdown()

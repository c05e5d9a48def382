"""Every byte token of both bundled models, on PostgreSQL: shown on the wheel, appended,
spun onto, stored, replayed by a fresh server and exported.

A byte token's text can be U+0000 (SmolLM2's token 190, Gemma's ``<0x00>``), which
PostgreSQL cannot hold in JSONB: a spin that landed on one was a 500 that broke the
student's session. The store now encodes such text at its edge (tokenwheel/store/text.py).

One session per model: each byte token is appended and undone in turn (after an undo the
context is the prompt again, so the model runs once for all of them), then a few stay
in the text.
"""

from __future__ import annotations

import bisect
import itertools
import random
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests import export_readers
from tests.api.conftest import Student, make_app
from tests.api.teacher_client import TOKEN
from tests.conftest import BUNDLED, GEMMA, MODEL_CACHE
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.tokens import _byte_decoder
from tokenwheel.settings import Settings
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore
from tokenwheel.store.text import decode_text, encode_text

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# SmolLM2's byte-level vocabulary lacks 21 of the 256 single bytes (0xC0, 0xC1 and
# 0xF5-0xFF never occur in UTF-8, and a few control characters); Gemma has all 256.
BYTE_TOKEN_COUNTS = {BUNDLED: 235, GEMMA: 256}
KEPT = 8  # byte tokens left in the final text
HOT = 10.0  # the flattest wheel: even a byte token has a chance a seed can find


def byte_tokens(model: Any) -> dict[int, int]:
    """byte -> the id of the token that is that byte alone: ``<0xNN>`` pieces, or for a
    byte-level BPE the 256 one-character pieces of GPT-2's byte alphabet."""
    vocab = model.tokenizer.get_vocab()
    alphabet = {b: ch for ch, b in _byte_decoder().items()}
    found = {}
    for b in range(256):
        piece = f"<0x{b:02X}>"
        if piece not in vocab and model.describer.byte_level:
            piece = alphabet[b]
        if piece in vocab:
            found[b] = vocab[piece]
    return found


def seed_landing_on(wheel: list[dict[str, Any]], token_id: int, version: int) -> int:
    """A spin seed whose draw (random.Random(f"{seed}:{version}"), as the service draws)
    lands well inside ``token_id``'s span of a wheel that lists every token, most likely
    first; at threshold 1 that is the Other wedge's order too."""
    ids = [t["token_id"] for t in wheel]
    cumulative = list(itertools.accumulate(t["probability"] for t in wheel))
    k = ids.index(token_id)
    low, high = (cumulative[k - 1] if k else 0.0), cumulative[k]
    margin = (high - low) / 10
    for seed in itertools.count():
        draw = random.Random(f"{seed}:{version}").random()
        if low + margin <= draw <= high - margin:
            assert bisect.bisect_right(cumulative, draw) == k
            return seed
    raise AssertionError("unreachable")


@pytest.fixture
def app(registry: ModelRegistry, gemma: str, pg_url: str, tmp_path: Path) -> Iterator[Flask]:
    settings = Settings(
        instance_path=tmp_path,
        database_url=pg_url,
        scheduler_enabled=False,
        offline=True,
        model_cache_dir=MODEL_CACHE,
        teacher_token=TOKEN,
        rate_limit="",
        low_threshold_rate_limit="",
    )
    app = make_app(settings, registry)
    yield app
    app.extensions["tokenwheel.engine"].dispose()


@pytest.mark.parametrize("model_id", [BUNDLED, GEMMA])
def test_every_byte_token_works_on_postgresql(
    app: Flask, registry: ModelRegistry, model_id: str
) -> None:
    model = registry.get(model_id)
    byte_ids = byte_tokens(model)
    assert len(byte_ids) == BYTE_TOKEN_COUNTS[model_id]
    nul = byte_ids[0]
    assert model.token_text(nul) == "\x00"
    client = app.test_client()
    student = Student(client, model=model_id, class_code="bytes")
    student.prompt("The byte")

    # shown: the whole wheel lists every byte token with its text and how to show it
    wheel = student.probs(threshold=0, temperature=HOT, other_top_k=0)["above_threshold_tokens"]
    listed = {t["token_id"]: t for t in wheel}
    for token_id in byte_ids.values():
        token = listed[token_id]
        assert token["token_text"] == model.token_text(token_id)
        assert token["display_text"] and token["probability"] > 0
        # nothing invisible: a control character shows as its bytes, like a partial one
        assert not any(unicodedata.category(ch) == "Cc" for ch in token["display_text"])
    assert listed[nul]["display_text"] == "⟨00⟩"

    # spun: a seeded spin whose draw lands in the Other wedge (threshold 1) on the NUL byte
    seed = seed_landing_on(wheel, nul, version=student.state()["version"])
    r = client.post(
        f"{student.url}/spin", json={"threshold": 1.0, "temperature": HOT, "seed": seed}
    )
    assert r.status_code == 200, r.json
    assert r.json["landed"]["wedge"] == "other" and r.json["appended_token"]["token_id"] == nul
    assert r.json["appended_token"]["token_text"] == "\x00"
    assert r.json["appended_token"]["sampled_from_other"] is True
    student.undo()

    # appended, one after another, by id
    for token_id in byte_ids.values():
        appended = student.append(token_id=token_id, temperature=HOT)["appended_token"]
        assert appended["token_id"] == token_id
        assert appended["token_text"] == model.token_text(token_id)
        student.undo()
    kept = list(byte_ids.values())[:KEPT]
    for token_id in kept:
        student.append(token_id=token_id, temperature=HOT)
    seen = student.state()
    assert [t["token_id"] for t in seen["token_history"]] == kept
    assert seen["current_text"] == "The byte" + model.decode(kept)
    assert seen["version"] == 2 + 2 + 2 * len(byte_ids) + KEPT

    # replayed: a fresh server on the same database shows the very same session
    fresh = make_app(app.extensions["tokenwheel.settings"], registry)
    again = fresh.test_client().get(student.url).json
    fresh.extensions["tokenwheel.engine"].dispose()
    for body in (seen, again):
        del body["last_accessed"]
    assert again == seen

    # stored, and exported: the CSV and JSON downloads read back as the stored events
    engine = make_engine(app.extensions["tokenwheel.settings"].database_url)
    try:
        stored = SqlEventStore(engine).load(student.id)
    finally:
        engine.dispose()
    texts = [e.token_text for e in stored if e.type == "TokenAppended"]  # type: ignore[attr-defined]
    assert texts[0] == "\x00" and set(texts) >= {model.token_text(i) for i in byte_ids.values()}
    export = f"/api/teacher/sessions/{student.id}/export"
    csv_text = client.get(f"{export}?format=csv", headers=AUTH).get_data(as_text=True)
    assert export_readers.events_from_csv(csv_text) == stored
    as_json = client.get(f"{export}?format=json", headers=AUTH).json
    assert export_readers.events_from_json(as_json) == stored
    timeline = client.get(f"/api/teacher/sessions/{student.id}", headers=AUTH).json["timeline"]
    assert timeline[2]["payload"]["token_text"] == "\x00"


@pytest.mark.parametrize("model_id", [BUNDLED, GEMMA])
def test_every_token_of_the_vocabulary_can_be_stored_and_shown(
    registry: ModelRegistry, gemma: str, model_id: str
) -> None:
    """Beyond the byte tokens: every token's text is valid UTF-8, survives the store's
    text encoding, and shows no invisible control character."""
    model = registry.get(model_id)
    with_nul = []
    for token_id in range(model.vocabulary_size):
        text = model.token_text(token_id)
        text.encode("utf-8")  # no lone surrogate
        assert decode_text(encode_text(text)) == text
        if "\x00" in text:
            with_nul.append(token_id)
        shown = model.token_info(token_id).display_text
        assert not any(unicodedata.category(ch) == "Cc" for ch in shown), (token_id, shown)
    assert with_nul == [byte_tokens(model)[0]]  # the NUL byte is the only one

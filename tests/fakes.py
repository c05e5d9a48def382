"""A hand-written fake language model for fast unit tests of the service.

It runs the real registry code (caches, distribution, sampling) on a tiny vocabulary
whose logits are a deterministic function of the token ids, so no weights are loaded.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import torch

from tokenwheel.inference.catalog import ModelSpec
from tokenwheel.inference.model import LoadedModel
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.tokens import TokenInfo, visible
from tokenwheel.inference.types import InferenceOptions, InvalidTokenError

VOCAB = [
    "<eos>",
    "The",
    " the",
    " cat",
    " sat",
    " on",
    " mat",
    " dog",
    " ran",
    ".",
    " a",
    " red",
    " big",
    " hat",
    " moon",
    "s",
    " é",
    "é",
]


class FakeTokenizerModel(LoadedModel):
    supports_kv = False

    def __init__(self, model_id: str = "fake") -> None:
        spec = ModelSpec(
            id=model_id, name="Fake", description="fake", parameters="0", source="local"
        )
        self.spec = spec
        self.vocabulary_size = len(VOCAB)
        self.max_context = 64
        self._texts = list(VOCAB)
        self._ids_by_text = None
        self._lock = threading.Lock()
        self.calls = 0
        self.parameter_bytes = 0
        self.dtype = "float32"

    def encode_prompt(self, text: str) -> list[int]:
        ids, rest = [], text
        while rest:
            for i in sorted(range(1, len(VOCAB)), key=lambda j: -len(VOCAB[j])):
                if rest.startswith(VOCAB[i]):
                    ids.append(i)
                    rest = rest[len(VOCAB[i]) :]
                    break
            else:
                rest = rest[1:]  # unknown characters are dropped
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(VOCAB[i] for i in ids)

    def token_info(self, token_id: int) -> TokenInfo:
        text = VOCAB[token_id]
        return TokenInfo(text, visible(text), False, token_id == 0, token_id == 0)

    def check_token_id(self, token_id: int) -> None:
        if not 0 <= token_id < len(VOCAB):
            raise InvalidTokenError(f"token_id {token_id} is outside the vocabulary")

    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        self.calls += 1
        seed = int.from_bytes(hashlib.sha256(repr(tuple(ids)).encode()).digest()[:8], "little")
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(len(VOCAB), generator=gen) * 3


class FakeModels(ModelRegistry):
    def __init__(self, model_ids: tuple[str, ...] = ("fake",)) -> None:
        super().__init__(InferenceOptions(cache_dir="/nonexistent", default_model=model_ids[0]))
        self.fakes = {m: FakeTokenizerModel(m) for m in model_ids}
        self.specs = tuple(f.spec for f in self.fakes.values())
        self.touched: set[str] = set()

    def availability(self, model_id: str) -> tuple[bool, str | None]:
        self.spec(model_id)
        return True, None

    def get(self, model_id: str) -> LoadedModel:
        self.spec(model_id)
        self.touched.add(model_id)  # "loaded" from first use on, as the registry's models
        return self.fakes[model_id]

    def loaded(self, model_id: str) -> bool:
        return model_id in self.touched

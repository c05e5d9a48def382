"""A loaded model: its tokenizer's view of text and its next-token logits."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .catalog import ModelSpec
from .tokens import TokenDescriber, TokenInfo
from .types import InvalidTokenError


def eos_ids(tokenizer: Any, generation_config: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(generation_config, "eos_token_id", None),
    ):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return frozenset(ids)


@dataclass(frozen=True)
class ModelFacts:
    """What the text side needs to know of a model's weights, so that a process holding
    only the tokenizer (the server, when the weights live in the inference process) can
    describe the model exactly as one holding the weights."""

    output_rows: int  # rows of the output matrix (may be padded past the vocabulary)
    eos_ids: frozenset[int]
    parameter_bytes: int
    dtype: str
    native_context: int  # max_position_embeddings (0 if the config names none)

    @classmethod
    def of(cls, tokenizer: Any, model: Any) -> ModelFacts:
        """The facts of ``model`` as loaded, its packed weights (inference/packed.py)
        counted in its memory."""
        output = model.get_output_embeddings()
        packed = (b for b in model.buffers() if b.is_mkldnn)
        return cls(
            output_rows=int(getattr(output, "out_features", 0) or output.weight.shape[0]),
            eos_ids=eos_ids(tokenizer, getattr(model, "generation_config", None)),
            parameter_bytes=sum(
                t.numel() * t.element_size() for t in (*model.parameters(), *packed)
            ),
            dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
            native_context=int(getattr(model.config, "max_position_embeddings", 0) or 0),
        )


class LoadedModel:
    """Tokenizer (+ weights) of one catalog model.

    The text helpers are thread-safe. The service's forward passes run in an engine
    (:mod:`~tokenwheel.inference.ports`); ``logits`` here is the plain full pass, the
    reference the engine's fast paths are held to and the benchmark's naive way. When
    the weights live in the inference process, ``model`` is None and ``facts`` (reported
    by that process) describe them.
    """

    def __init__(
        self,
        spec: ModelSpec,
        tokenizer: Any,
        model: Any,
        max_context: int,
        facts: ModelFacts | None = None,
    ) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.model = model
        facts = facts or ModelFacts.of(tokenizer, model)
        self.facts = facts
        # The real vocabulary, not padded rows of the output matrix.
        self.vocabulary_size = min(len(tokenizer), facts.output_rows)
        self.max_context = max_context
        self._texts: list[str] | None = None
        self._ids_by_text: dict[str, list[int]] | None = None
        self._lock = threading.Lock()
        self.describer = TokenDescriber(tokenizer, set(facts.eos_ids))
        self.parameter_bytes = facts.parameter_bytes
        self.dtype = facts.dtype

    # ------------------------------------------------------------ text

    def encode_prompt(self, text: str) -> list[int]:
        """The prompt as the model sees it (with BOS where the tokenizer adds one)."""
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Decode all ids at once, so a character split across tokens shows whole."""
        return str(self.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False))

    def _text_table(self) -> list[str]:
        if self._texts is None:
            with self._lock:
                if self._texts is None:
                    self._texts = [
                        self.tokenizer.decode([i], clean_up_tokenization_spaces=False)
                        for i in range(self.vocabulary_size)
                    ]
        return self._texts

    def decode_vocabulary(self) -> None:
        """Decode every token's text now, as a model loads, rather than under the first
        requests that describe a token (Gemma 3: 1.3 s; in a class of 30 the first spins
        waited up to 1.7 s for it). Both the server and the inference process call it."""
        self._text_table()

    def token_text(self, token_id: int) -> str:
        """The exact text of one token (a partial UTF-8 character decodes as U+FFFD)."""
        return self._text_table()[token_id]

    def token_info(self, token_id: int) -> TokenInfo:
        """Exact text, display text, and whether it is partial UTF-8, special or EOS."""
        return self.describer.describe(token_id, self.token_text(token_id))

    def token_id_for_text(self, text: str) -> int:
        """The id of the one vocabulary token whose text is exactly ``text``."""
        if self._ids_by_text is None:
            table: dict[str, list[int]] = {}
            for i, t in enumerate(self._text_table()):
                table.setdefault(t, []).append(i)
            self._ids_by_text = table
        ids = self._ids_by_text.get(text, [])
        if not ids:
            raise InvalidTokenError(
                f"{text!r} is not exactly one token of {self.spec.id}'s vocabulary"
            )
        if len(ids) > 1:
            raise InvalidTokenError(
                f"{text!r} is the text of several tokens ({', '.join(map(str, ids[:5]))}); "
                "send token_id instead"
            )
        return ids[0]

    def check_token_id(self, token_id: int) -> None:
        if not 0 <= token_id < self.vocabulary_size:
            raise InvalidTokenError(
                f"token_id {token_id} is outside the vocabulary (0..{self.vocabulary_size - 1})"
            )

    # ------------------------------------------------------------ model

    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        """Next-token logits (float32, vocabulary size) after the full sequence ``ids``."""
        if self.model is None:
            raise RuntimeError(f"{self.spec.id}'s weights live in the inference process")
        with torch.inference_mode():
            input_ids = torch.tensor([list(ids)], dtype=torch.long)
            out = self.model(input_ids=input_ids, use_cache=False)
            return out.logits[0, -1, : self.vocabulary_size].float().clone()

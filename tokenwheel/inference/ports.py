"""The seam between the registry and what runs forward passes.

The registry serves tokenizers, caches and distributions; an :class:`Engine` holds the
weights and runs the passes: :class:`~tokenwheel.inference.engine.InferenceEngine` on a
model thread in this process, or :class:`~tokenwheel.inference.process.ProcessEngine` on
one in a child process (the server's default: no GIL shared with request threads).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .catalog import ModelSpec
from .model import LoadedModel, ModelFacts
from .types import InferenceOptions, PositionNumbers


@dataclass(frozen=True)
class ModelParts:
    """A model as an engine loaded it, for the registry to build a
    :class:`~tokenwheel.inference.model.LoadedModel` from. ``weights`` is None when they
    live in another process; ``facts`` describe them either way."""

    tokenizer: Any
    weights: Any | None
    facts: ModelFacts
    seconds: float
    from_cache: bool  # the weights came from the converted-weights cache
    max_context: int | None = None  # the most positions this engine holds per text


class Engine(Protocol):
    """What the registry asks of the code that holds weights and runs forward passes."""

    @property
    def threads(self) -> int:
        """torch threads of the model thread's one-token steps."""
        ...

    def load(self, spec: ModelSpec, options: InferenceOptions, dtype: torch.dtype) -> ModelParts:
        """Load ``spec``'s weights where its passes run, and its tokenizer here. Takes
        seconds; the registry calls it on the asking request's thread, never the model
        thread, so the other models keep being served. ModelUnavailableError says why
        a model cannot load."""
        ...

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        """Next-token logits (float32, vocabulary size) after ``ids``, once the pass
        that served them is done. A full queue raises OverloadedError at once."""
        ...

    def prefetch(
        self, model: LoadedModel, ids: Sequence[int], session: Hashable
    ) -> Future[torch.Tensor] | None:
        """Queue the logits after ``ids`` at low priority and return at once: they run
        only when no other request waits, replace ``session``'s waiting prefetch, and
        may be dropped unrun (the future is then cancelled or fails). None: nothing was
        queued (no model thread to give it to)."""
        ...

    def score_positions(
        self, model: LoadedModel, ids: Sequence[int], alternatives: int
    ) -> tuple[PositionNumbers, ...]:
        """Every position of ``ids`` scored in one forward pass on the model thread
        (``scoring.score_positions``), as numbers. A full queue raises OverloadedError."""
        ...

    def drop_model(self, model_id: str) -> None:
        """Forget a model's weights and KV caches (the registry unloaded it)."""
        ...

    def shutdown(self) -> None:
        """Stop the model thread (and the child process, if any)."""
        ...

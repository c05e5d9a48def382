"""The real model registry on the fake model's logits, with no weights and no model
thread: the torch code of ``tokenwheel/inference/`` that ``tests.fakes`` imitates."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from tests.fakes import FakeModel
from tokenwheel.inference.catalog import ModelSpec
from tokenwheel.inference.registry import ModelRegistry, build_wheels
from tokenwheel.inference.types import InferenceOptions, ModelUnavailableError


class FakeWeights(FakeModel):
    """The fake model's vocabulary and logits, as the tensor a loaded model returns."""

    def __init__(self, model_id: str = "fake") -> None:
        super().__init__(model_id)
        self.spec = ModelSpec(
            id=model_id, name="Fake", description="fake", parameters="0", source="local"
        )

    def logits(self, ids: Sequence[int]) -> torch.Tensor:  # type: ignore[override]
        return torch.tensor(super().logits(ids), dtype=torch.float32)


class FakeEngine:
    """An engine (``inference.ports.Engine``) with no model thread: a pass is the fake's
    ``logits``. The engine itself is tested on real weights in tests/models."""

    threads = 1

    def __init__(self) -> None:
        self.prefetched: list[tuple[tuple[int, ...], Hashable]] = []

    def load(self, spec: ModelSpec, options: InferenceOptions, dtype: torch.dtype) -> Any:
        raise ModelUnavailableError(f"{spec.id}: the fake engine loads nothing")

    def logits(self, model: FakeWeights, ids: Sequence[int]) -> torch.Tensor:
        return model.logits(ids)

    def prefetch(self, model: FakeWeights, ids: Sequence[int], session: Hashable) -> Future[Any]:
        """A prefetch that ran at once (the engine's queue is tested on its own)."""
        self.prefetched.append((tuple(ids), session))
        future: Future[Any] = Future()
        future.set_result(model.logits(ids))
        return future

    def drop_model(self, model_id: str) -> None:
        pass

    def shutdown(self) -> None:
        pass


class RegistryOnFakeWeights(ModelRegistry):
    """The real registry (catalog, caches, distributions and sampling in torch) with the
    fake models already loaded and the fake engine: what ``tests.fakes.FakeModels``
    imitates in plain Python."""

    def __init__(self, model_ids: tuple[str, ...] = ("fake",)) -> None:
        fakes = {m: FakeWeights(m) for m in model_ids}
        super().__init__(
            InferenceOptions(
                cache_dir="/nonexistent",
                default_model=model_ids[0],
                extra_models=tuple(f.spec for f in fakes.values()),
            )
        )
        self.engine.shutdown()
        self.engine = FakeEngine()
        self.wheels = build_wheels(self.engine, self.options)  # type: ignore[arg-type]
        self.fakes = fakes
        self._models.update(fakes)  # type: ignore[arg-type]  # loaded: get() returns them

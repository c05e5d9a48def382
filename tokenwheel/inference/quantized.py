"""The optional quantized engine: a model's GGUF file as shipped, run by llama.cpp.

Opt-in per model (``TOKENWHEEL_QUANTIZED_MODELS``), never the default: on SmolLM2's
Q4_1 file a step is several times faster than our float32 torch step, but its
probabilities differ from float32 by up to a few 1e-2 (docs/performance.md), and
students read these numbers. A model would run on it by default only within
``catalog.QUANTIZED_DEFAULT_MAX_DP`` of float32 (``catalog.quantized_by_default``).

:class:`LlamaEngine` is an :class:`~tokenwheel.inference.ports.Engine`: the registry gets
the same float32 logits tensor from it as from the torch engines, so wheels, spins and
sampling run unchanged. Its model thread lives in this process (llama.cpp releases the
GIL for the whole decode), takes the requests that wait at once, and serves them as
rounds of :class:`~tokenwheel.inference.llama_runtime.LlamaContext` (one decode for many
sessions, prefixes kept in llama.cpp's KV cache). :class:`RoutedEngine` sends each model
to the engine selected for it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

from .catalog import ModelSpec
from .llama_runtime import LLAMA_PACKAGE, LlamaContext, LlamaError
from .loading import gguf_path, load_text_side
from .model import LoadedModel, ModelFacts, eos_ids
from .ports import Engine, ModelParts
from .scoring import position_numbers
from .types import InferenceOptions, ModelUnavailableError, OverloadedError, PositionNumbers

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with `make install-quantized` (pip install '.[quantized]')"


def llama_cpp_problem() -> str | None:
    """Why the quantized engine cannot run here (None: it can). Cheap: no import."""
    if importlib.util.find_spec(LLAMA_PACKAGE) is None:
        return (
            f"the quantized engine needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
        )
    return None


def quantized_problem(spec: ModelSpec) -> str | None:
    """Why ``spec`` cannot run on the quantized engine here (None: it can)."""
    if not spec.gguf_file:
        return f"{spec.id} has no GGUF file for the quantized engine"
    return llama_cpp_problem()


@dataclass
class _Request:
    model_id: str
    ids: tuple[int, ...]
    scoring: int | None = None  # alternatives, for a whole text scored
    closing: LlamaContext | None = None  # a dropped model's context, to close
    future: Future[object] = field(default_factory=Future)


class LlamaEngine:
    """llama.cpp's passes on a model thread of this process, batched across sessions."""

    def __init__(
        self, *, threads: int = 0, batch_wait: float = 0.003, max_queue: int = 256
    ) -> None:
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.batch_wait = batch_wait
        self.contexts: dict[str, LlamaContext] = {}
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def load(self, spec: ModelSpec, options: InferenceOptions, dtype: torch.dtype) -> ModelParts:
        """The GGUF file into llama.cpp, the tokenizer (transformers', as for the torch
        engines: the same ids) here."""
        problem = quantized_problem(spec)
        if problem is not None:
            raise ModelUnavailableError(problem)
        started = time.perf_counter()
        path = gguf_path(spec, options)
        with self._lock:
            if spec.id not in self.contexts:
                try:
                    self.contexts[spec.id] = LlamaContext(path, threads=self.threads)
                except LlamaError as exc:
                    raise ModelUnavailableError(f"{spec.id} failed to load: {exc}") from exc
        context = self.contexts[spec.id]
        text = load_text_side(spec, options, dtype)
        facts = ModelFacts(
            output_rows=context.n_vocab,
            eos_ids=eos_ids(text.tokenizer, None),
            parameter_bytes=context.file_bytes,
            dtype="gguf",
            native_context=context.n_ctx_train,
        )
        seconds = time.perf_counter() - started
        log.info("%s on llama.cpp (%s, %.0f MB)", spec.id, path.name, context.file_bytes / 1e6)
        return ModelParts(text.tokenizer, None, facts, seconds, False, context.cells)

    def submit(self, model: LoadedModel, ids: Sequence[int]) -> Future[object]:
        """Queue one step; its future holds the logits (numpy, float32) once decoded."""
        return self._submit(_Request(model.spec.id, tuple(ids)))

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        values = self.submit(model, ids).result()
        assert isinstance(values, np.ndarray)
        return torch.from_numpy(values[: model.vocabulary_size])

    def score_positions(
        self, model: LoadedModel, ids: Sequence[int], alternatives: int
    ) -> tuple[PositionNumbers, ...]:
        rows = self._submit(_Request(model.spec.id, tuple(ids), alternatives)).result()
        assert isinstance(rows, np.ndarray)
        logits = torch.from_numpy(rows[:-1, : model.vocabulary_size])
        return position_numbers(logits, ids, alternatives)

    def prefetch(
        self, model: LoadedModel, ids: Sequence[int], session: Hashable
    ) -> Future[torch.Tensor] | None:
        """No low lane here: llama.cpp's steps are short, and its queue serves students
        first come first served. Nothing is queued."""
        return None

    def drop_model(self, model_id: str) -> None:
        with self._lock:
            context = self.contexts.pop(model_id, None)
        if context is not None:
            # closed on the model thread, between rounds, so never during a decode
            self._submit(_Request(model_id, (), closing=context))

    def shutdown(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        for context in self.contexts.values():
            context.close()
        self.contexts.clear()

    # ------------------------------------------------------------ the model thread

    def _submit(self, request: _Request) -> Future[object]:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="tokenwheel-llama", daemon=True
                    )
                    self._thread.start()
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise OverloadedError(
                "The model is busy with other requests; try again in a moment."
            ) from None
        return request.future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        steps: dict[str, list[_Request]] = {}
        for request in batch:
            if request.closing is not None:  # a dropped model: closed between rounds
                request.closing.close()
            elif request.scoring is not None:
                self._answer([request], lambda c, r: [c.all_logits(r[0].ids)])
            else:
                steps.setdefault(request.model_id, []).append(request)
        for requests in steps.values():
            self._answer(requests, lambda c, r: c.next_logits([q.ids for q in r]))

    def _answer(
        self,
        requests: list[_Request],
        work: Callable[[LlamaContext, list[_Request]], Sequence[object]],
    ) -> None:
        try:
            context = self.contexts.get(requests[0].model_id)
            if context is None:
                raise ModelUnavailableError(f"{requests[0].model_id} is not loaded")
            results = work(context, requests)
        except BaseException as exc:  # never leave a caller waiting
            for request in requests:
                request.future.set_exception(exc)
        else:
            for request, result in zip(requests, results, strict=True):
                request.future.set_result(result)


class RoutedEngine:
    """Each model to the engine selected for it: ``quantized`` for the ids in
    ``selected``, ``default`` for the rest. An :class:`~tokenwheel.inference.ports.Engine`."""

    def __init__(self, default: Engine, quantized: Engine, selected: frozenset[str]) -> None:
        self.default = default
        self.quantized = quantized
        self.selected = selected

    @property
    def threads(self) -> int:
        return self.default.threads

    def engine_for(self, model_id: str) -> Engine:
        return self.quantized if model_id in self.selected else self.default

    def load(self, spec: ModelSpec, options: InferenceOptions, dtype: torch.dtype) -> ModelParts:
        return self.engine_for(spec.id).load(spec, options, dtype)

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        return self.engine_for(model.spec.id).logits(model, ids)

    def prefetch(
        self, model: LoadedModel, ids: Sequence[int], session: Hashable
    ) -> Future[torch.Tensor] | None:
        return self.engine_for(model.spec.id).prefetch(model, ids, session)

    def score_positions(
        self, model: LoadedModel, ids: Sequence[int], alternatives: int
    ) -> tuple[PositionNumbers, ...]:
        return self.engine_for(model.spec.id).score_positions(model, ids, alternatives)

    def drop_model(self, model_id: str) -> None:
        self.engine_for(model_id).drop_model(model_id)

    def shutdown(self) -> None:
        self.default.shutdown()
        self.quantized.shutdown()

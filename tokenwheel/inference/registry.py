"""The model side's front door: catalog, lazy loading, caches, distributions.

One registry per process. It keeps the tokenizers and the logits caches; forward passes
run in its engine (:mod:`~tokenwheel.inference.ports`): by default a child process that
owns the weights and their model thread (:mod:`~tokenwheel.inference.process`), so the
passes never wait for the GIL held by request threads; in this process's own model thread
for the naive engine and the tests (:mod:`~tokenwheel.inference.engine`). Either starts on
first use, never at import or app creation, so no model, thread or child process exists
before a server forks workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from . import distribution as dist
from .availability import ModelAvailability
from .catalog import ModelSpec
from .cpu import check_dtype
from .engine import EngineKwargs, InferenceEngine
from .logits_cache import LogitsCache
from .model import LoadedModel
from .ports import Engine
from .prefetch import LogitsKey, Prefetches
from .process import ProcessEngine
from .quantized import LlamaEngine, RoutedEngine
from .tokens import TokenInfo
from .types import (
    NO_RULES,
    Distribution,
    InferenceOptions,
    ModelInfo,
    ModelUnavailableError,
    PositionNumbers,
    SamplingRules,
    ScoredPosition,
    ScoredToken,
    TokenProbability,
    UnknownModelError,
    WheelLanding,
)

log = logging.getLogger(__name__)

PreparedKey = tuple[str, str, tuple[int, ...], float]  # ... and the temperature


def _tensor_bytes(value: torch.Tensor) -> int:
    return int(value.numel() * value.element_size())


def _prepared_bytes(value: dist.Prepared) -> int:
    return value.nbytes


_PARAMETER_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9}


def estimated_bytes(parameters: str, dtype: torch.dtype) -> int:
    """Rough weight size from the catalog's parameter count ("135M" -> bytes)."""
    text = parameters.strip().upper()
    try:
        count = float(text[:-1]) * _PARAMETER_SUFFIX[text[-1]]
    except (KeyError, ValueError, IndexError):
        return 0
    return int(count * torch.tensor([], dtype=dtype).element_size())


def _engine_kwargs(options: InferenceOptions) -> EngineKwargs:
    """The model thread's settings: the naive baseline batches nothing, reuses no KV and
    multiplies by the weights as stored."""
    naive = options.engine == "naive"
    return EngineKwargs(
        threads=options.torch_threads,
        kv_cache_bytes=options.kv_cache_bytes,
        max_batch=1 if naive else options.max_batch,
        batch_wait=0.0 if naive else options.batch_wait,
        max_queue=options.max_queue,
        reuse_kv=not naive,
        pack=not naive,
    )


def build_engine(
    options: InferenceOptions, engine_kwargs: EngineKwargs, quantized: frozenset[str]
) -> Engine:
    """torch in a child process (or this one: the naive baseline is the seed's design,
    forward passes in the server's process), and llama.cpp for the models selected for it."""
    naive = options.engine == "naive"
    engine: Engine = (
        ProcessEngine(options, engine_kwargs)
        if options.inference_process and not naive
        else InferenceEngine(**engine_kwargs)
    )
    if not quantized:
        return engine
    llama = LlamaEngine(threads=options.torch_threads, max_queue=options.max_queue)
    return RoutedEngine(engine, llama, quantized)


class ModelRegistry:
    """What the service asks of the model side, by model id: one registry per process."""

    def __init__(self, options: InferenceOptions) -> None:
        self.options = options
        self._models: dict[str, LoadedModel] = {}
        self.catalog = ModelAvailability(options, loaded=self.loaded)
        self.specs = self.catalog.specs
        self._load_locks: dict[str, threading.Lock] = {s.id: threading.Lock() for s in self.specs}
        naive = options.engine == "naive"
        self.engine = build_engine(options, _engine_kwargs(options), self.catalog.quantized)
        self.dtype = check_dtype(options.dtype)
        self.cache: LogitsCache[LogitsKey, torch.Tensor] = LogitsCache(
            0 if naive else options.logits_cache_bytes, _tensor_bytes
        )
        # the wheel, the append after it and a spin share one softmax and one sort
        self.prepared_cache: LogitsCache[PreparedKey, dist.Prepared] = LogitsCache(
            0 if naive else options.logits_cache_bytes // 2, _prepared_bytes
        )
        self.prefetches = Prefetches(self.cache)
        self.forward_passes = 0
        self.load_count: dict[str, int] = {}
        self.loaded_from_cache: dict[str, bool] = {}
        self._last_used: dict[str, float] = {}

    # ------------------------------------------------------------ catalog

    def spec(self, model_id: str) -> ModelSpec:
        return self.catalog.spec(model_id)

    def availability(self, model_id: str) -> tuple[bool, str | None]:
        """``(can load here, why not or None)``: cheap, remembered for a minute."""
        return self.catalog.availability(model_id)

    def default_model(self) -> tuple[str, str | None]:
        """``(effective default id, why it differs from the configured one or None)``."""
        return self.catalog.default_model()

    def describe(self) -> list[ModelInfo]:
        self.default_model()  # chosen first, as before: no model that can load is an error
        return self.catalog.describe(self._models)

    # ------------------------------------------------------------ loading

    def get(self, model_id: str) -> LoadedModel:
        """The loaded model, loading it once even when many requests ask at once."""
        model = self._models.get(model_id)
        if model is not None:
            self._last_used[model_id] = time.monotonic()
            return model
        spec = self.spec(model_id)
        with self._load_locks[spec.id]:
            model = self._models.get(model_id)
            if model is not None:
                return model
            ok, reason = self.availability(model_id)
            if not ok:
                raise ModelUnavailableError(f"Model {model_id!r} is not available here: {reason}")
            self._make_room(model_id, estimated_bytes(spec.parameters, self.dtype))
            # On this request's thread, not the model thread: a load takes seconds (a GGUF
            # conversion 16-40 s), and the model thread keeps serving the other students.
            try:
                model, seconds, from_cache = self._load(spec)
            except ModelUnavailableError as exc:
                self.catalog.remember_failure(model_id, str(exc))
                raise
            self._models[model_id] = model
            self._last_used[model_id] = time.monotonic()
            self.load_count[model_id] = self.load_count.get(model_id, 0) + 1
            self.loaded_from_cache[model_id] = from_cache
            log.info(
                "loaded %s in %.1f s (%s, %.0f MB%s)",
                model_id,
                seconds,
                "from the converted-weights cache" if from_cache else "converted",
                model.parameter_bytes / 1e6,
                ", in the inference process" if model.model is None else "",
            )
            self._make_room(model_id, 0)
            return model

    def _load(self, spec: ModelSpec) -> tuple[LoadedModel, float, bool]:
        """``(model, seconds, from the converted-weights cache)``. The engine loads the
        weights where its passes run (an inference process: this one gets only the
        tokenizer)."""
        parts = self.engine.load(spec, self.options, self.dtype)
        facts = parts.facts
        # a model that names no window (none in the catalog) is served 1024 positions
        window = self.catalog.window(spec, spec.max_context or facts.native_context) or 1024
        window = min(window, parts.max_context or window)
        model = LoadedModel(spec, parts.tokenizer, parts.weights, max_context=window, facts=facts)
        return model, parts.seconds, parts.from_cache

    def _make_room(self, keep: str, incoming: int) -> None:
        """Unload least recently used models until the loaded ones (plus ``incoming``
        bytes about to load) fit the memory budget. ``keep`` is never unloaded. A
        request that holds a model keeps it alive until it finishes."""
        budget = self.options.memory_budget_bytes
        if not budget:
            return
        while True:
            others = [m for m in self._models if m != keep]
            used = sum(m.parameter_bytes for m in self._models.values())
            if not others or used + incoming <= budget:
                return
            victim = min(others, key=lambda m: self._last_used.get(m, 0.0))
            self.unload(victim)

    def unload(self, model_id: str) -> None:
        model = self._models.pop(model_id, None)
        if model is not None:
            self.cache.drop_model(model_id)
            self.prepared_cache.drop_model(model_id)
            self.engine.drop_model(model_id)
            log.info("unloaded %s (memory budget)", model_id)

    def preload(self, model_ids: Sequence[str]) -> None:
        for model_id in model_ids:
            try:
                self.get(model_id)
            except (UnknownModelError, ModelUnavailableError) as exc:
                log.warning("preload of %s failed: %s", model_id, exc)

    def loaded(self, model_id: str) -> bool:
        return model_id in self._models

    # ------------------------------------------------------------ forward passes

    def shutdown(self) -> None:
        self.engine.shutdown()

    def logits(self, model_id: str, ids: Sequence[int]) -> torch.Tensor:
        """Next-token logits for ``ids``: from the logits cache, else from the engine
        (which reuses KV prefixes and batches concurrent one-token steps)."""
        key: LogitsKey = (model_id, self.options.dtype, tuple(ids))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        model = self.get(model_id)
        value = self.engine.logits(model, key[2])
        self.forward_passes += 1
        self.cache.put(key, value)
        return value

    def prefetch(self, model_id: str, ids: Sequence[int], session: str) -> None:
        """The logits after ``ids`` at low priority, into the logits cache, not waited
        for (:mod:`~tokenwheel.inference.prefetch`); a model not loaded stays unloaded."""
        key: LogitsKey = (model_id, self.options.dtype, tuple(ids))
        self.prefetches.start(self.engine, self._models.get(model_id), key, session)

    # ------------------------------------------------------------ what the service asks

    def encode_prompt(self, model_id: str, text: str) -> list[int]:
        return self.get(model_id).encode_prompt(text)

    def decode(self, model_id: str, ids: Sequence[int]) -> str:
        return self.get(model_id).decode(ids) if ids else ""

    def token_info(self, model_id: str, token_id: int) -> TokenInfo:
        return self.get(model_id).token_info(token_id)

    def token_id_for_text(self, model_id: str, text: str) -> int:
        return self.get(model_id).token_id_for_text(text)

    def max_context(self, model_id: str) -> int:
        return self.get(model_id).max_context

    def prepared(self, model_id: str, ids: Sequence[int], temperature: float) -> dist.Prepared:
        """The distribution after ``ids`` at ``temperature``: the softmax done once,
        shared by the wheel, the append that follows and a spin. Computed with one torch
        thread: request threads run many at once, and their float64 vector work gains
        nothing from a second thread that the model thread needs."""
        key: PreparedKey = (model_id, self.options.dtype, tuple(ids), temperature)
        prepared = self.prepared_cache.get(key)
        if prepared is None:
            logits = self.logits(model_id, key[2])
            with _one_torch_thread():
                prepared = dist.Prepared(logits, temperature)
            self.prepared_cache.put(key, prepared)
        return prepared

    def distribution(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        other_top_k: int,
        rules: SamplingRules = NO_RULES,
    ) -> Distribution:
        model = self.get(model_id)
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.build_distribution(
                prepared, threshold, other_top_k, model.token_info, rules
            )

    def score(
        self,
        model_id: str,
        ids: Sequence[int],
        token_id: int,
        temperature: float,
        threshold: float,
        rules: SamplingRules = NO_RULES,
    ) -> ScoredToken:
        model = self.get(model_id)
        model.check_token_id(token_id)
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.score_token(prepared, token_id, threshold, model.token_text, rules)

    def other_token(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> int:
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.other_token_for_draw(prepared, threshold, draw, rules)

    def land_on_wheel(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> WheelLanding:
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.land_on_wheel(prepared, threshold, draw, rules)

    def score_text(self, model_id: str, ids: Sequence[int], k: int) -> tuple[ScoredPosition, ...]:
        """Every position of ``ids`` in one pass (``scoring``), described."""
        model, self.forward_passes = self.get(model_id), self.forward_passes + 1
        return tuple(_described(model, n) for n in self.engine.score_positions(model, ids, k))


def _described(model: LoadedModel, numbers: PositionNumbers) -> ScoredPosition:
    """A position of a scored text (temperature 1; the first has no context), its token
    and its most likely alternatives described as the wheel describes tokens."""

    def token(token_id: int, p: float | None, logp: float | None) -> TokenProbability:
        info = model.token_info(token_id)
        return TokenProbability(
            token_id=token_id,
            token_text=info.text,
            probability=p or 0.0,
            log_probability=logp or 0.0,
            display_text=info.display_text,
            partial_utf8=info.partial_utf8,
            special=info.special,
            end_of_sequence=info.end_of_sequence,
        )

    return ScoredPosition(
        token=token(numbers.token_id, numbers.probability, numbers.log_probability),
        scored=numbers.probability is not None,
        rank=numbers.rank,
        alternatives=tuple(
            token(i, p, lp)
            for i, p, lp in zip(
                numbers.alternative_ids,
                numbers.alternative_probabilities,
                numbers.alternative_log_probabilities,
                strict=True,
            )
        ),
    )


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch's intra-op threads are per calling thread: a request thread that uses two
    competes with the model thread's two on a 2-core machine."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

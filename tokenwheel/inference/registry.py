"""The model side's front door: catalog, lazy loading, caches, distributions.

One registry per process. It keeps the tokenizers; forward passes run in its engine
(:mod:`~tokenwheel.inference.ports`): by default a child process that owns the weights,
their model thread, the logits caches and the wheels built from them
(:mod:`~tokenwheel.inference.process`, :mod:`~tokenwheel.inference.wheels`), so neither
the passes nor the wheels' math wait for the GIL held by request threads; in this
process's own model thread, with the caches here, for the naive engine and the tests
(:mod:`~tokenwheel.inference.engine`). Either starts on
first use, never at import or app creation, so no model, thread or child process exists
before a server forks workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import torch

from .availability import ModelAvailability
from .catalog import ModelSpec
from .cpu import check_dtype
from .engine import EngineKwargs, InferenceEngine
from .model import LoadedModel
from .ports import Engine
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
from .wheels import WheelQuestion, Wheels, WheelSide

log = logging.getLogger(__name__)

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


def build_wheels(engine: Engine, options: InferenceOptions) -> WheelSide:
    """Where wheels are built: in the inference process, next to the logits, or here
    (the in-process engine, and a campus mixing llama.cpp models with torch ones: their
    logits come to this process anyway). The naive engine caches nothing."""
    if isinstance(engine, ProcessEngine):
        return engine
    naive = options.engine == "naive"
    return Wheels(engine, options.dtype, 0 if naive else options.logits_cache_bytes)


class ModelRegistry:
    """What the service asks of the model side, by model id: one registry per process."""

    def __init__(self, options: InferenceOptions) -> None:
        self.options = options
        self._models: dict[str, LoadedModel] = {}
        self.catalog = ModelAvailability(options, loaded=self.loaded)
        self.specs = self.catalog.specs
        self._load_locks: dict[str, threading.Lock] = {s.id: threading.Lock() for s in self.specs}
        self.engine = build_engine(options, _engine_kwargs(options), self.catalog.quantized)
        self.wheels = build_wheels(self.engine, options)
        self.dtype = check_dtype(options.dtype)
        self.texts_scored = 0
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
        started = time.perf_counter()
        model.decode_vocabulary()
        return model, parts.seconds + time.perf_counter() - started, parts.from_cache

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
            if self.wheels is not self.engine:
                self.wheels.drop_model(model_id)
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

    @property
    def local_wheels(self) -> Wheels:
        """The wheels built in this process (the in-process engine; tests read their
        caches). With the inference process they are the child's: ``engine.stats()``."""
        assert isinstance(self.wheels, Wheels), "the wheels are in the inference process"
        return self.wheels

    @property
    def forward_passes(self) -> int:
        """Logits asked of the engine (not found in the logits cache), and texts scored."""
        if isinstance(self.engine, ProcessEngine):
            return int(self.engine.stats()["logits_asked"]) + self.texts_scored
        return self.local_wheels.forward_passes + self.texts_scored

    def logits(self, model_id: str, ids: Sequence[int]) -> torch.Tensor:
        """Next-token logits for ``ids``: from the logits cache, else from the engine
        (which reuses KV prefixes and batches concurrent one-token steps)."""
        return self.wheels.logits(self.get(model_id), ids)

    def prefetch(self, model_id: str, ids: Sequence[int], session: str) -> None:
        """The logits after ``ids`` at low priority, into the logits cache, not waited
        for (:mod:`~tokenwheel.inference.prefetch`). A model not loaded stays unloaded,
        and a text that fills the window has no next wheel to prefetch."""
        model = self._models.get(model_id)
        if model is not None and len(ids) < model.max_context:
            self.wheels.prefetch(model, ids, session)

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

    def distribution(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        other_top_k: int,
        rules: SamplingRules = NO_RULES,
    ) -> Distribution:
        question = WheelQuestion("wheel", temperature, threshold, rules, other_top_k=other_top_k)
        result: Distribution = self.wheels.ask(self.get(model_id), ids, question)
        return result

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
        question = WheelQuestion("score", temperature, threshold, rules, token_id=token_id)
        result: ScoredToken = self.wheels.ask(model, ids, question)
        return result

    def other_token(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> int:
        question = WheelQuestion("other", temperature, threshold, rules, draw=draw)
        return int(self.wheels.ask(self.get(model_id), ids, question))

    def land_on_wheel(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> WheelLanding:
        question = WheelQuestion("land", temperature, threshold, rules, draw=draw)
        result: WheelLanding = self.wheels.ask(self.get(model_id), ids, question)
        return result

    def score_text(self, model_id: str, ids: Sequence[int], k: int) -> tuple[ScoredPosition, ...]:
        """Every position of ``ids`` in one pass (``scoring``), described."""
        model, self.texts_scored = self.get(model_id), self.texts_scored + 1
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

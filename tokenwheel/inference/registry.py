"""The model side's front door: catalog, lazy loading, the model thread, caches.

One registry per process. Forward passes run on a single model-owning thread: torch's
thread pools are per thread, so one thread with a fixed ``torch.set_num_threads`` keeps
the machine's cores busy without oversubscription. The thread starts on first use, never
at import or app creation, so no model or thread exists before a server forks workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from . import distribution as dist
from .catalog import CATALOG, ModelSpec
from .cpu import dtype_problem
from .engine import InferenceEngine
from .loading import availability, load_pretrained, load_text_side, probe_hub
from .model import LoadedModel, ModelFacts
from .process import ProcessEngine
from .tokens import TokenInfo
from .types import (
    Distribution,
    InferenceOptions,
    ModelInfo,
    ModelUnavailableError,
    ScoredToken,
    UnknownModelError,
    UnsupportedDtypeError,
    WheelLanding,
)

log = logging.getLogger(__name__)

AVAILABILITY_TTL = 60.0


class LogitsCache:
    """Next-token logits by (model, dtype, token ids), least recently used out first,
    bounded in bytes. Temperature, threshold and top-k are applied after the cache, so
    changing them never costs a forward pass. The registry keeps a second one for
    prepared distributions (one per temperature), keyed by (model, dtype, ids, T)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Any, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(key: tuple[Any, ...], value: Any) -> int:
        if isinstance(value, torch.Tensor):
            nbytes = value.numel() * value.element_size()
        else:
            nbytes = value.nbytes
        return int(nbytes) + 8 * len(key[2]) + 64

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Any, value: Any) -> None:
        size = self._size(key, value)
        if size > self.max_bytes or self.max_bytes <= 0:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= self._size(key, old)
            self._entries[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                k, v = self._entries.popitem(last=False)
                self._bytes -= self._size(k, v)

    def drop_model(self, model_id: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == model_id]:
                self._bytes -= self._size(key, self._entries.pop(key))

    @property
    def bytes_used(self) -> int:
        return self._bytes


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def check_dtype(dtype: str, cpuinfo: str | None = None) -> torch.dtype:
    problem = dtype_problem(dtype, cpuinfo)
    if problem is not None:
        raise UnsupportedDtypeError(problem)
    return DTYPES[dtype]


_PARAMETER_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9}


def estimated_bytes(parameters: str, dtype: torch.dtype) -> int:
    """Rough weight size from the catalog's parameter count ("135M" -> bytes)."""
    text = parameters.strip().upper()
    try:
        count = float(text[:-1]) * _PARAMETER_SUFFIX[text[-1]]
    except (KeyError, ValueError, IndexError):
        return 0
    return int(count * torch.tensor([], dtype=dtype).element_size())


class ModelRegistry:
    def __init__(self, options: InferenceOptions) -> None:
        self.options = options
        self.specs: tuple[ModelSpec, ...] = CATALOG + tuple(
            s for s in options.extra_models if isinstance(s, ModelSpec)
        )
        self._models: dict[str, LoadedModel] = {}
        self._load_locks: dict[str, threading.Lock] = {s.id: threading.Lock() for s in self.specs}
        self._availability: dict[str, tuple[float, bool, str | None]] = {}
        self._hub_probe: tuple[float, str | None] | None = None
        self._hub_probe_lock = threading.Lock()
        naive = options.engine == "naive"
        engine_kwargs: dict[str, Any] = dict(
            threads=options.torch_threads,
            kv_cache_bytes=options.kv_cache_bytes,
            max_batch=1 if naive else options.max_batch,
            batch_wait=0.0 if naive else options.batch_wait,
            max_queue=options.max_queue,
            reuse_kv=not naive,
        )
        # The naive baseline is the seed's design: forward passes in the server's process.
        self.engine: Any = (
            ProcessEngine(options, engine_kwargs)
            if options.inference_process and not naive
            else InferenceEngine(**engine_kwargs)
        )
        self._default: tuple[str, str | None] | None = None
        self.dtype = check_dtype(options.dtype)
        self.cache = LogitsCache(0 if naive else options.logits_cache_bytes)
        # the wheel, the append after it and a spin share one softmax and one sort
        self.prepared_cache = LogitsCache(0 if naive else options.logits_cache_bytes // 2)
        self.forward_passes = 0
        self.load_count: dict[str, int] = {}
        self.load_seconds: dict[str, float] = {}
        self.loaded_from_cache: dict[str, bool] = {}
        self._last_used: dict[str, float] = {}

    # ------------------------------------------------------------ catalog

    def spec(self, model_id: str) -> ModelSpec:
        for spec in self.specs:
            if spec.id == model_id:
                return spec
        known = ", ".join(s.id for s in self.specs)
        raise UnknownModelError(f"Unknown model {model_id!r}. Known models: {known}.")

    def availability(self, model_id: str) -> tuple[bool, str | None]:
        if model_id in self._models:
            return True, None
        cached = self._availability.get(model_id)
        now = time.monotonic()
        if cached and now - cached[0] < AVAILABILITY_TTL:
            return cached[1], cached[2]
        ok, reason = availability(self.spec(model_id), self.options, self._hub_problem)
        self._availability[model_id] = (now, ok, reason)
        return ok, reason

    def _hub_problem(self) -> str | None:
        """Why the Hub cannot be reached (None: it can), probed once per
        AVAILABILITY_TTL for all Hub models together."""
        with self._hub_probe_lock:
            now = time.monotonic()
            if self._hub_probe is None or now - self._hub_probe[0] >= AVAILABILITY_TTL:
                self._hub_probe = (now, probe_hub(self.options.hub_timeout))
            return self._hub_probe[1]

    def _remember_failure(self, model_id: str, reason: str) -> None:
        """A model that failed to load is unavailable for AVAILABILITY_TTL: /api/models
        says so and the next request fails at once instead of loading again."""
        self._availability[model_id] = (time.monotonic(), False, reason)
        if self._default is not None and self._default[0] == model_id:
            self._default = None  # choose the effective default again

    def default_model(self) -> tuple[str, str | None]:
        """``(effective default id, why it differs from the configured one or None)``."""
        if self._default is not None:
            return self._default
        configured = self.options.default_model
        try:
            self.spec(configured)
            ok, reason = self.availability(configured)
        except UnknownModelError as exc:
            ok, reason = False, str(exc)
        if ok:
            self._default = (configured, None)
            return self._default
        for spec in self.specs:
            if spec.source == "bundled" and self.availability(spec.id)[0]:
                why = (
                    f"The configured default model {configured!r} cannot load here ({reason}); "
                    f"using the bundled model {spec.id!r} instead."
                )
                log.warning(why)
                self._default = (spec.id, why)
                return self._default
        raise ModelUnavailableError(f"No model can load here: {configured}: {reason}")

    def describe(self) -> list[ModelInfo]:
        default_id, _ = self.default_model()
        infos = []
        for spec in self.specs:
            ok, reason = self.availability(spec.id)
            loaded = self._models.get(spec.id)
            infos.append(
                ModelInfo(
                    id=spec.id,
                    name=spec.name,
                    description=spec.description,
                    parameters=spec.parameters,
                    source=spec.source,
                    available=ok,
                    loaded=loaded is not None,
                    reason=reason,
                    vocabulary_size=loaded.vocabulary_size if loaded else None,
                    max_context=loaded.max_context if loaded else self._window(spec),
                    dtype=loaded.dtype if loaded else None,
                )
            )
        return infos

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
                self._remember_failure(model_id, str(exc))
                raise
            self._models[model_id] = model
            self._last_used[model_id] = time.monotonic()
            self.load_count[model_id] = self.load_count.get(model_id, 0) + 1
            self.load_seconds[model_id] = seconds
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
        """``(model, seconds, from the converted-weights cache)``. With an inference
        process, it loads the weights and this process only the tokenizer."""
        if isinstance(self.engine, ProcessEngine):
            report = self.engine.load(spec)
            text = load_text_side(spec, self.options, self.dtype)
            facts = report.facts
            tokenizer, weights = text.tokenizer, None
            seconds, from_cache = report.seconds + text.seconds, report.from_cache
        else:
            loaded = load_pretrained(spec, self.options, self.dtype)
            tokenizer, weights = loaded.tokenizer, loaded.model
            facts = ModelFacts.of(tokenizer, weights)
            seconds, from_cache = loaded.seconds, loaded.from_cache
        # a model that names no window (none in the catalog) is served 1024 positions
        window = self._window(spec, spec.max_context or facts.native_context) or 1024
        model = LoadedModel(spec, tokenizer, weights, max_context=window, facts=facts)
        return model, seconds, from_cache

    def _window(self, spec: ModelSpec, native: int | None = None) -> int | None:
        """The context window served: the model's own, lowered by TOKENWHEEL_MAX_CONTEXT."""
        limit = native or spec.max_context
        cap = self.options.max_context
        if cap:
            return min(limit, cap) if limit else cap
        return limit

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

    # ------------------------------------------------------------ model thread

    def shutdown(self) -> None:
        self.engine.shutdown()

    def logits(self, model_id: str, ids: Sequence[int]) -> torch.Tensor:
        """Next-token logits for ``ids``: from the logits cache, else from the model thread
        (which reuses KV prefixes and batches concurrent one-token steps)."""
        key = (model_id, self.options.dtype, tuple(ids))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        model = self.get(model_id)
        value = self.engine.logits(model, key[2])
        self.forward_passes += 1
        self.cache.put(key, value)
        return value

    # ------------------------------------------------------------ what the service asks

    def encode_prompt(self, model_id: str, text: str) -> list[int]:
        return self.get(model_id).encode_prompt(text)

    def decode(self, model_id: str, ids: Sequence[int]) -> str:
        return self.get(model_id).decode(ids) if ids else ""

    def token_text(self, model_id: str, token_id: int) -> str:
        return self.get(model_id).token_text(token_id)

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
        key = (model_id, self.options.dtype, tuple(ids), temperature)
        prepared = self.prepared_cache.get(key)
        if prepared is None:
            logits = self.logits(model_id, key[2])
            with _one_torch_thread():
                prepared = dist.Prepared(logits, temperature)
            self.prepared_cache.put(key, prepared)
        return prepared  # type: ignore[no-any-return]

    def distribution(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        other_top_k: int,
    ) -> Distribution:
        model = self.get(model_id)
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.build_distribution(prepared, threshold, other_top_k, model.token_info)

    def score(
        self, model_id: str, ids: Sequence[int], token_id: int, temperature: float, threshold: float
    ) -> ScoredToken:
        model = self.get(model_id)
        model.check_token_id(token_id)
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.score_token(prepared, token_id, threshold, model.token_text)

    def other_token(
        self, model_id: str, ids: Sequence[int], temperature: float, threshold: float, draw: float
    ) -> int:
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.other_token_for_draw(prepared, threshold, draw)

    def land_on_wheel(
        self, model_id: str, ids: Sequence[int], temperature: float, threshold: float, draw: float
    ) -> WheelLanding:
        prepared = self.prepared(model_id, ids, temperature)
        with _one_torch_thread():
            return dist.land_on_wheel(prepared, threshold, draw)


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

"""Which catalog models can load here, and the effective default model.

A check is cheap (it never downloads or loads weights) but may probe the Hub, so its
answer is remembered for AVAILABILITY_TTL, and one remembered probe serves every Hub
model. A model that failed to load stays unavailable as long, so the next request fails
at once instead of loading again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from .catalog import CATALOG, ModelSpec
from .loading import availability, probe_hub
from .model import LoadedModel
from .quantized import quantized_problem
from .types import InferenceOptions, ModelInfo, ModelUnavailableError, UnknownModelError

log = logging.getLogger(__name__)

AVAILABILITY_TTL = 60.0


class ModelAvailability:
    """The catalog (built in plus the operator's extra models) as this machine sees it.
    ``loaded(model_id)`` says whether a model is in memory: a loaded model is available
    without a check."""

    def __init__(self, options: InferenceOptions, loaded: Callable[[str], bool]) -> None:
        self.options = options
        self.specs: tuple[ModelSpec, ...] = CATALOG + tuple(
            s for s in options.extra_models if isinstance(s, ModelSpec)
        )
        self._loaded = loaded
        self.quantized = frozenset(options.quantized_models)
        for model_id in sorted(self.quantized):  # an operator's typo fails at start-up
            if not self.spec(model_id).gguf_file:
                raise UnknownModelError(
                    f"TOKENWHEEL_QUANTIZED_MODELS names {model_id!r}, which has no GGUF file "
                    "(the quantized engine runs GGUF files)"
                )
        self._checked: dict[str, tuple[float, bool, str | None]] = {}
        self._hub_probe: tuple[float, str | None] | None = None
        self._hub_probe_lock = threading.Lock()
        self._default: tuple[str, str | None] | None = None

    def spec(self, model_id: str) -> ModelSpec:
        for spec in self.specs:
            if spec.id == model_id:
                return spec
        known = ", ".join(s.id for s in self.specs)
        raise UnknownModelError(f"Unknown model {model_id!r}. Known models: {known}.")

    def availability(self, model_id: str) -> tuple[bool, str | None]:
        """``(can load here, why not or None)``."""
        if self._loaded(model_id):
            return True, None
        cached = self._checked.get(model_id)
        now = time.monotonic()
        if cached and now - cached[0] < AVAILABILITY_TTL:
            return cached[1], cached[2]
        spec = self.spec(model_id)
        ok, reason = availability(spec, self.options, self._hub_problem)
        if ok and model_id in self.quantized:
            # selected for llama.cpp but not installed: unavailable with the reason (never
            # served in float32 behind the operator's back)
            reason = quantized_problem(spec)
            ok = reason is None
        self._checked[model_id] = (now, ok, reason)
        return ok, reason

    def _hub_problem(self) -> str | None:
        """Why the Hub cannot be reached (None: it can), probed once per
        AVAILABILITY_TTL for all Hub models together."""
        with self._hub_probe_lock:
            now = time.monotonic()
            if self._hub_probe is None or now - self._hub_probe[0] >= AVAILABILITY_TTL:
                self._hub_probe = (now, probe_hub(self.options.hub_timeout))
            return self._hub_probe[1]

    def remember_failure(self, model_id: str, reason: str) -> None:
        """A model that failed to load is unavailable for AVAILABILITY_TTL: /api/models
        says so and the next request fails at once instead of loading again."""
        self._checked[model_id] = (time.monotonic(), False, reason)
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

    def window(self, spec: ModelSpec, native: int | None = None) -> int | None:
        """The context window served: the model's own, lowered by TOKENWHEEL_MAX_CONTEXT."""
        limit = native or spec.max_context
        cap = self.options.max_context
        if cap:
            return min(limit, cap) if limit else cap
        return limit

    def _engine(self, spec: ModelSpec) -> tuple[str, float | None]:
        """Which engine serves ``spec`` and its measured max |dp| from float32."""
        if spec.id in self.quantized:
            return "llama.cpp", spec.quantized_max_dp
        return "torch", 0.0 if self.options.dtype == "float32" else None

    def describe(self, models: Mapping[str, LoadedModel]) -> list[ModelInfo]:
        """Every catalog model as the API lists it; ``models``: the loaded ones by id."""
        infos = []
        for spec in self.specs:
            ok, reason = self.availability(spec.id)
            loaded = models.get(spec.id)
            engine, deviation = self._engine(spec)
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
                    max_context=loaded.max_context if loaded else self.window(spec),
                    dtype=loaded.dtype if loaded else None,
                    engine=engine,
                    max_abs_dp_vs_float32=deviation,
                )
            )
        return infos

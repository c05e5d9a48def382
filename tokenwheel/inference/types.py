"""Plain, JSON-ready results of the model layer. No tensors leave ``inference/``."""

from __future__ import annotations

from dataclasses import dataclass, field

# TOKENWHEEL_DTYPE's values, their one home; each is also the name of its torch dtype
# (torch.float32...). ``cpu.check_dtype`` says whether this machine can run each.
DTYPE_NAMES = ("float32", "bfloat16")


@dataclass(frozen=True)
class InferenceOptions:
    """What the model layer needs from the operator's settings (it never reads them)."""

    cache_dir: str
    offline: bool = False
    hub_timeout: float = 3.0
    torch_threads: int = 0
    default_model: str = "gpt2"
    max_context: int | None = None
    extra_models: tuple[object, ...] = field(default_factory=tuple)
    dtype: str = "float32"  # or "bfloat16", only where the CPU has native support
    memory_budget_bytes: int | None = None  # unload least recently used models above it
    engine: str = "fast"  # "naive": no caches, no batching, a full forward pass per request
    kv_cache_bytes: int = 1 << 30
    logits_cache_bytes: int = 128 << 20
    max_batch: int = 32
    batch_wait: float = 0.003
    max_queue: int = 256
    # forward passes in a child process (no GIL shared with request threads); the
    # in-process model thread otherwise (tests, and TOKENWHEEL_ENGINE=naive)
    inference_process: bool = False
    # models served by the optional quantized engine (llama.cpp on the GGUF file as
    # shipped); every other model runs in torch at ``dtype``
    quantized_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class SamplingRules:
    """top-k, top-p and min-p, applied after temperature in transformers' order (TopK,
    TopP, MinP). The defaults are off: 0, 1.0 and 0.0 (``domain.rules`` holds the
    ranges and checks them first)."""

    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0

    @property
    def off(self) -> bool:
        return self.top_k == 0 and self.top_p >= 1.0 and self.min_p <= 0.0


NO_RULES = SamplingRules()


@dataclass(frozen=True)
class SamplingSummary:
    top_k: int
    top_p: float
    min_p: float
    kept_token_count: int
    kept_probability: float  # the true probability of the kept tokens, summed


@dataclass(frozen=True)
class TokenProbability:
    token_id: int
    token_text: str
    probability: float
    log_probability: float
    display_text: str = ""
    partial_utf8: bool = False
    special: bool = False
    end_of_sequence: bool = False
    kept: bool = True  # the sampling rules keep it
    sampling_probability: float = 0.0  # renormalized over the kept tokens; 0 if cut


@dataclass(frozen=True)
class OtherCategory:
    total_probability: float
    token_count: int
    sample_tokens: tuple[TokenProbability, ...]
    kept_token_count: int
    # the kept tail tokens' renormalized probabilities, summed: the Other wedge's width on
    # the wheel a draw is made on (= total_probability with every rule off)
    sampling_probability: float


@dataclass(frozen=True)
class Distribution:
    temperature: float
    threshold: float
    above_threshold_tokens: tuple[TokenProbability, ...]
    other_category: OtherCategory
    total_above_threshold_probability: float
    vocabulary_size: int
    # Shannon entropy of the whole distribution at this temperature, in bits
    entropy_bits: float
    sampling: SamplingSummary


@dataclass(frozen=True)
class ScoredToken:
    """One token's place in a distribution: what an append records."""

    token_id: int
    token_text: str
    probability: float
    log_probability: float
    category: str  # "above_threshold" | "other"
    rank: int  # 1 = most likely in the whole vocabulary
    other_total_probability: float
    other_token_count: int
    rank_in_other: int | None  # 1 = most likely inside the Other wedge
    kept: bool = True
    sampling_probability: float = 0.0


@dataclass(frozen=True)
class WheelLanding:
    """Where one spin's uniform draw fell. Angles are degrees clockwise from the top of a
    wheel laid out as next-token-probs lists it: the above-threshold tokens, most likely
    first, then the Other wedge, which closes the circle at 360."""

    draw: float  # uniform in [0, 1)
    angle: float  # where the pointer stops: 360 * draw, inside the landed wedge
    wedge: str  # "token" | "other"
    wedge_index: int  # 0 = most likely token; the Other wedge is len(above_threshold_tokens)
    start_angle: float
    end_angle: float
    token_id: int  # the landed token, or the one the draw picked inside the Other wedge


@dataclass(frozen=True)
class PositionNumbers:
    """One position of a text scored in one forward pass, as numbers only (what the
    model thread sends back): the token there, and, when a token came before it, its
    probability given those tokens at temperature 1, its rank (1 = most likely), and the
    ``alternatives`` most likely tokens there (ids and probabilities, most likely first,
    ties by id)."""

    token_id: int
    probability: float | None
    log_probability: float | None
    rank: int | None
    alternative_ids: tuple[int, ...]
    alternative_probabilities: tuple[float, ...]
    alternative_log_probabilities: tuple[float, ...]


@dataclass(frozen=True)
class ScoredPosition:
    """A :class:`PositionNumbers` with its token and alternatives described (display
    text, special, end of sequence). ``token.probability`` and ``log_probability`` are
    0.0 for the first position, which has no context: read ``scored`` first."""

    token: TokenProbability
    scored: bool
    rank: int | None
    alternatives: tuple[TokenProbability, ...]


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    description: str
    parameters: str
    source: str
    available: bool
    loaded: bool
    reason: str | None = None
    vocabulary_size: int | None = None
    max_context: int | None = None
    dtype: str | None = None
    engine: str = "torch"  # "torch" | "llama.cpp" (the optional quantized engine)
    # measured max |dp| of this engine against float32 torch (0.0: it is float32 torch;
    # None: not measured, e.g. bfloat16)
    max_abs_dp_vs_float32: float | None = 0.0


class OverloadedError(RuntimeError):
    """The model thread's queue is full; the caller should retry shortly."""


class UnsupportedDtypeError(RuntimeError):
    """The configured dtype would be slow or wrong on this machine."""


class UnknownModelError(LookupError):
    """No model of that name in the catalog."""


class ModelUnavailableError(RuntimeError):
    """The model exists but cannot be loaded here; the message says why."""


class InvalidTokenError(ValueError):
    """A token id or text that is not (exactly one token) in the model's vocabulary."""


class EmptyOtherError(ValueError):
    """The Other wedge holds no probability at these settings."""

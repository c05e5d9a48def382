"""A hand-written fake of the model side, for the unit tier: plain Python, no torch.

``FakeModels`` implements the services' ``LanguageModels`` port (as cosmicpython's
``FakeRepository`` implements its repository) on a tiny vocabulary whose next-token logits
are a deterministic function of the token ids, so no weights are loaded and nothing
imports torch or transformers.

The numbers follow ``tokenwheel/inference/distribution.py`` rule for rule (softmax in
float64 with the largest logit subtracted first, the log-probability floor, wedges at
``probability >= threshold`` most likely first with ties by id, Other as the sum of the
tail, ranks, the inverse-CDF walk of the renormalized tail) and the pointer lands through
the real ``wheel.wedge_for_draw``. ``tests/inference/test_fake_models.py`` holds the
fake to the real registry run on the same logits, so the two cannot drift apart.

Like the registry, every per-model method looks the model up through ``self.get`` and
every forward computation goes through ``self.logits``: a test that replaces either (a
model that fails to load, a counter of forward passes) reaches every use case.
"""

from __future__ import annotations

import array
import bisect
import hashlib
import math
import random
import threading
from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING

from tokenwheel.inference.tokens import TokenInfo, visible
from tokenwheel.inference.types import (
    NO_RULES,
    Distribution,
    EmptyOtherError,
    InvalidTokenError,
    ModelInfo,
    OtherCategory,
    SamplingRules,
    SamplingSummary,
    ScoredPosition,
    ScoredToken,
    TokenProbability,
    UnknownModelError,
    WheelLanding,
)
from tokenwheel.inference.wheel import wedge_for_draw

if TYPE_CHECKING:
    from tokenwheel.services.ports import LanguageModels

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

# distribution.LOG_PROBABILITY_FLOOR, repeated so that this module needs no torch
LOG_PROBABILITY_FLOOR = -1e300
MAX_CONTEXT = 64


def fake_logits(ids: Sequence[int]) -> list[float]:
    """Next-token logits after ``ids``: N(0, 3^2) draws seeded by a hash of the ids,
    rounded to float32 (a real model's dtype, so torch can be handed the very same
    numbers)."""
    seed = int.from_bytes(hashlib.sha256(repr(tuple(ids)).encode()).digest()[:8], "little")
    rng = random.Random(seed)
    return array.array("f", (rng.gauss(0.0, 1.0) * 3 for _ in VOCAB)).tolist()


class FakeModel:
    """One fake model: the tokenizer's side of ``inference.model.LoadedModel``, and its
    forward pass (``logits``), counted in ``calls``."""

    def __init__(self, model_id: str = "fake") -> None:
        self.id = model_id
        self.name = "Fake"
        self.vocabulary_size = len(VOCAB)
        self.max_context = MAX_CONTEXT
        self.parameter_bytes = 0
        self.dtype = "float32"
        self.calls = 0  # forward computations (the registry's caches spare the rest)
        self._lock = threading.Lock()

    def encode_prompt(self, text: str) -> list[int]:
        """Greedy longest match on the vocabulary; characters it lacks are dropped."""
        ids, rest = [], text
        by_length = sorted(range(1, len(VOCAB)), key=lambda j: -len(VOCAB[j]))
        while rest:
            for i in by_length:
                if rest.startswith(VOCAB[i]):
                    ids.append(i)
                    rest = rest[len(VOCAB[i]) :]
                    break
            else:
                rest = rest[1:]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(VOCAB[i] for i in ids)

    def token_text(self, token_id: int) -> str:
        return VOCAB[token_id]

    def token_info(self, token_id: int) -> TokenInfo:
        text = VOCAB[token_id]
        return TokenInfo(text, visible(text), False, token_id == 0, token_id == 0)

    def token_id_for_text(self, text: str) -> int:
        ids = [i for i, t in enumerate(VOCAB) if t == text]
        if not ids:
            raise InvalidTokenError(f"{text!r} is not exactly one token of {self.id}'s vocabulary")
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

    def logits(self, ids: Sequence[int]) -> list[float]:
        with self._lock:
            self.calls += 1
        return fake_logits(ids)


class Prepared:
    """``distribution.Prepared`` in plain Python: one distribution at one temperature."""

    def __init__(self, logits: Sequence[float], temperature: float) -> None:
        self.temperature = temperature
        top = max(logits)
        shifted = [(x - top) / temperature for x in logits]
        log_total = math.log(math.fsum(math.exp(s) for s in shifted))
        self.logp = [max(s - log_total, LOG_PROBABILITY_FLOOR) for s in shifted]
        self.probs = [math.exp(lp) for lp in self.logp]
        # every id from the most to the least likely, ties by id
        self.order = sorted(range(len(self.probs)), key=lambda i: (-self.probs[i], i))

    def head(self, threshold: float) -> list[int]:
        """The token wedges: probability >= threshold, most likely first, ties by id."""
        return [i for i in self.order if self.probs[i] >= threshold]

    def other_total(self, threshold: float) -> float:
        return math.fsum(p for p in self.probs if p < threshold)

    def entropy_bits(self) -> float:
        return max(
            0.0,
            -math.fsum(p * lp for p, lp in zip(self.probs, self.logp, strict=True)) / math.log(2.0),
        )

    def tail_token(self, n_above: int, draw: float, probs: Sequence[float]) -> int:
        """The token a uniform ``draw`` picks from the renormalized tail (inverse CDF),
        each tail token as wide as ``probs`` says (the sampling probabilities)."""
        if n_above == len(self.probs):
            raise EmptyOtherError("The Other wedge is empty at this threshold.")
        tail_ids = self.order[n_above:]
        tail_probs = [probs[i] for i in tail_ids]
        total = math.fsum(tail_probs)
        if total <= 0.0:
            raise EmptyOtherError("The Other wedge holds no probability at these settings.")
        cumulative = [c / total for c in accumulate(tail_probs)]
        index = min(bisect.bisect_right(cumulative, draw), len(tail_ids) - 1)
        while index > 0 and tail_probs[index] == 0.0:  # never a zero-probability token
            index -= 1
        return tail_ids[index]

    def token(self, token_id: int, info: TokenInfo, sampling: Sampling) -> TokenProbability:
        return TokenProbability(
            token_id=token_id,
            token_text=info.text,
            probability=self.probs[token_id],
            log_probability=self.logp[token_id],
            display_text=info.display_text,
            partial_utf8=info.partial_utf8,
            special=info.special,
            end_of_sequence=info.end_of_sequence,
            kept=sampling.kept[token_id],
            sampling_probability=sampling.probs[token_id],
        )


def kept_by_rules(scores: Sequence[float], rules: SamplingRules) -> list[bool]:
    """``distribution.kept_by_rules`` in plain Python: top-k (every tie of the k-th kept),
    top-p (from the least likely up, ties by id, cut while the running total is at most
    1 - top_p, the last token always kept), min-p (below min_p times the largest
    probability), each over the tokens the rules before it kept."""
    n = len(scores)
    alive = [True] * n
    if rules.top_k > 0:
        kth = sorted(scores, reverse=True)[min(rules.top_k, n) - 1]
        alive = [x >= kth for x in scores]
    if rules.top_p < 1.0:
        probs = _softmax(scores, alive)
        order = sorted(range(n), key=lambda i: (scores[i] if alive[i] else -math.inf, i))
        cumulative = list(accumulate(probs[i] for i in order))
        for position, i in enumerate(order[:-1]):
            if cumulative[position] <= 1 - rules.top_p:
                alive[i] = False
    if rules.min_p > 0.0:
        probs = _softmax(scores, alive)
        top = max(probs)
        keep = probs.index(top)
        alive = [alive[i] and (probs[i] >= rules.min_p * top or i == keep) for i in range(n)]
    return alive


def _softmax(scores: Sequence[float], alive: Sequence[bool]) -> list[float]:
    top = max(x for x, a in zip(scores, alive, strict=True) if a)
    exps = [math.exp(x - top) if a else 0.0 for x, a in zip(scores, alive, strict=True)]
    total = math.fsum(exps)
    return [e / total for e in exps]


class Sampling:
    """``distribution.Sampling`` in plain Python."""

    def __init__(self, prepared: Prepared, rules: SamplingRules) -> None:
        self.rules = rules
        if rules.off:
            self.kept = [True] * len(prepared.probs)
            self.probs = list(prepared.probs)
            self.kept_probability = math.fsum(prepared.probs)
        else:
            self.kept = kept_by_rules(prepared.logp, rules)
            kept_probs = [p if k else 0.0 for p, k in zip(prepared.probs, self.kept, strict=True)]
            self.kept_probability = math.fsum(kept_probs)
            self.probs = [p / self.kept_probability for p in kept_probs]

    def other_total(self, prepared: Prepared, threshold: float) -> float:
        """The Other wedge's width on the wheel a draw is made on."""
        if self.rules.off:
            return prepared.other_total(threshold)
        return math.fsum(self.probs[i] for i in prepared.order[len(prepared.head(threshold)) :])

    def summary(self) -> SamplingSummary:
        return SamplingSummary(
            top_k=self.rules.top_k,
            top_p=self.rules.top_p,
            min_p=self.rules.min_p,
            kept_token_count=sum(self.kept),
            kept_probability=self.kept_probability,
        )


class FakeModels:
    """The model side on :class:`FakeModel` s: what ``inference.registry.ModelRegistry``
    answers, with its caches (logits by ids, distributions by ids and temperature), so a
    forward computation happens once per sequence, as in the registry."""

    def __init__(self, model_ids: tuple[str, ...] = ("fake",)) -> None:
        self.fakes = {m: FakeModel(m) for m in model_ids}
        self.default = model_ids[0]
        self.touched: set[str] = set()  # "loaded": from first use on, as the registry's
        self._logits: dict[tuple[str, tuple[int, ...]], list[float]] = {}
        self._prepared: dict[tuple[str, tuple[int, ...], float], Prepared] = {}
        self._lock = threading.Lock()
        self.forward_passes = 0  # logits computed, not found in the cache
        self.prefetches: list[tuple[str, tuple[int, ...], str]] = []
        self.prefetch_error: Exception | None = None  # raised by prefetch, when set

    # ------------------------------------------------------------ catalog

    def default_model(self) -> tuple[str, str | None]:
        return self.default, None

    def describe(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=fake.id,
                name=fake.name,
                description="fake",
                parameters="0",
                source="local",
                available=True,
                loaded=fake.id in self.touched,
                vocabulary_size=fake.vocabulary_size if fake.id in self.touched else None,
                max_context=fake.max_context,
                dtype=fake.dtype if fake.id in self.touched else None,
            )
            for fake in self.fakes.values()
        ]

    def get(self, model_id: str) -> FakeModel:
        fake = self.fakes.get(model_id)
        if fake is None:
            known = ", ".join(self.fakes)
            raise UnknownModelError(f"Unknown model {model_id!r}. Known models: {known}.")
        self.touched.add(model_id)
        return fake

    def loaded(self, model_id: str) -> bool:
        return model_id in self.touched

    # ------------------------------------------------------------ text

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

    # ------------------------------------------------------------ numbers

    def logits(self, model_id: str, ids: Sequence[int]) -> list[float]:
        """Next-token logits: from the cache, else one forward computation."""
        key = (model_id, tuple(ids))
        with self._lock:
            cached = self._logits.get(key)
        if cached is not None:
            return cached
        value = self.get(model_id).logits(key[1])
        with self._lock:
            self._logits[key] = value
            self.forward_passes += 1
        return value

    def prefetch(self, model_id: str, ids: Sequence[int], session: str) -> None:
        """As the registry's, with no model thread: the logits land in the cache now."""
        if self.prefetch_error is not None:
            raise self.prefetch_error
        self.prefetches.append((model_id, tuple(ids), session))
        if model_id in self.touched:
            self.logits(model_id, ids)

    def prepared(self, model_id: str, ids: Sequence[int], temperature: float) -> Prepared:
        key = (model_id, tuple(ids), temperature)
        with self._lock:
            prepared = self._prepared.get(key)
        if prepared is None:
            prepared = Prepared(self.logits(model_id, key[1]), temperature)
            with self._lock:
                self._prepared[key] = prepared
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
        sampling = Sampling(prepared, rules)
        head = prepared.head(threshold)
        samples = prepared.order[len(head) : len(head) + other_top_k]
        return Distribution(
            temperature=temperature,
            threshold=threshold,
            above_threshold_tokens=tuple(
                prepared.token(i, model.token_info(i), sampling) for i in head
            ),
            other_category=OtherCategory(
                total_probability=prepared.other_total(threshold),
                token_count=len(prepared.probs) - len(head),
                sample_tokens=tuple(
                    prepared.token(i, model.token_info(i), sampling) for i in samples
                ),
                kept_token_count=sum(1 for i in prepared.order[len(head) :] if sampling.kept[i]),
                sampling_probability=sampling.other_total(prepared, threshold),
            ),
            total_above_threshold_probability=math.fsum(prepared.probs[i] for i in head),
            vocabulary_size=len(prepared.probs),
            entropy_bits=prepared.entropy_bits(),
            sampling=sampling.summary(),
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
        sampling = Sampling(prepared, rules)
        p = prepared.probs[token_id]
        in_head = p >= threshold
        rank = sum(1 for q in prepared.probs if q > p) + 1
        n_above = len(prepared.head(threshold))
        return ScoredToken(
            token_id=token_id,
            token_text=model.token_text(token_id),
            probability=p,
            log_probability=prepared.logp[token_id],
            category="above_threshold" if in_head else "other",
            rank=rank,
            other_total_probability=prepared.other_total(threshold),
            other_token_count=len(prepared.probs) - n_above,
            rank_in_other=None if in_head else rank - n_above,
            kept=sampling.kept[token_id],
            sampling_probability=sampling.probs[token_id],
        )

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
        sampling = Sampling(prepared, rules)
        return prepared.tail_token(len(prepared.head(threshold)), draw, sampling.probs)

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
        sampling = Sampling(prepared, rules)
        head = prepared.head(threshold)
        other_total = sampling.other_total(prepared, threshold)
        hit = wedge_for_draw([sampling.probs[i] for i in head], other_total, draw)
        if hit.draw_in_other is None:
            token_id = head[hit.index]
        else:
            token_id = prepared.tail_token(len(head), hit.draw_in_other, sampling.probs)
        return WheelLanding(
            draw=draw,
            angle=360.0 * draw,
            wedge="other" if hit.other else "token",
            wedge_index=hit.index,
            start_angle=360.0 * hit.start,
            end_angle=360.0 * hit.end,
            token_id=token_id,
        )

    def score_text(
        self, model_id: str, ids: Sequence[int], alternatives: int
    ) -> tuple[ScoredPosition, ...]:
        """``scoring.score_positions`` in plain Python: position ``i`` scored on the
        logits after ``ids[:i]`` at temperature 1; the first has no context."""
        model = self.get(model_id)

        def token(token_id: int, p: float = 0.0, logp: float = 0.0) -> TokenProbability:
            info = model.token_info(token_id)
            return TokenProbability(
                token_id=token_id,
                token_text=info.text,
                probability=p,
                log_probability=logp,
                display_text=info.display_text,
                partial_utf8=info.partial_utf8,
                special=info.special,
                end_of_sequence=info.end_of_sequence,
            )

        positions = [ScoredPosition(token(ids[0]), False, None, ())] if ids else []
        for i in range(1, len(ids)):
            prepared = self.prepared(model_id, ids[:i], 1.0)
            probs, logp = prepared.probs, prepared.logp
            target = ids[i]
            positions.append(
                ScoredPosition(
                    token=token(target, probs[target], logp[target]),
                    scored=True,
                    rank=sum(1 for q in probs if q > probs[target]) + 1,
                    alternatives=tuple(
                        token(j, probs[j], logp[j]) for j in prepared.order[:alternatives]
                    ),
                )
            )
        return tuple(positions)


if TYPE_CHECKING:

    def _implements_the_port(models: FakeModels) -> LanguageModels:
        return models  # a type checker proves that the fake fits the port

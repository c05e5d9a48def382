"""Wheels built where the logits are: the caches, the prefetches and the questions asked
of a distribution (its wheel, a token's place in it, where a spin lands, an Other draw).

One :class:`Wheels` lives in the process that holds the logits. With the inference
process (the server's default) that is the child (:mod:`~tokenwheel.inference.child`):
the server asks a :class:`WheelQuestion` over the pipe and gets back the answer, a few
hundred bytes, instead of the whole vocabulary's logits (1 MB for Gemma 3) and the
float64 softmax, sort and sums that followed them in the server's GIL-bound request
threads (about 2.3 ms a wheel for SmolLM2 and 16 ms for Gemma 3, measured). With the
in-process engine (the naive baseline, the tests) the registry keeps its own. Either way
the numbers come from the same functions of :mod:`~tokenwheel.inference.distribution` on
the same float32 logits, so they are the same to the last bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from . import distribution as dist
from .logits_cache import LogitsCache
from .model import LoadedModel
from .prefetch import LogitsKey, Prefetches
from .types import NO_RULES, Distribution, SamplingRules, ScoredToken, WheelLanding

PreparedKey = tuple[str, str, tuple[int, ...], float]  # ... and the temperature
# A wheel of more wedges than this is not sent: its list of tokens outweighs the logits
# (measured for threshold 0 on SmolLM2: 3.3 MB, pickled in 101 ms and read back in 231 ms,
# against 196 KB of logits in 0.2 ms), so the child answers TOO_MANY_WEDGES and the server
# builds that wheel itself from the logits, as the issue allows for a threshold-0 wheel.
MOST_WEDGES_SENT = 1024
TOO_MANY_WEDGES = "too many wedges"
Answer = Distribution | ScoredToken | WheelLanding | int | str


@dataclass(frozen=True)
class WheelQuestion:
    """One question about the distribution after some ids at one temperature:
    ``wheel`` (the distribution as the wheel shows it, ``other_top_k`` of its tail),
    ``score`` (where ``token_id`` sits), ``land`` (where a spin's ``draw`` stops the
    pointer) or ``other`` (the Other-wedge token a ``draw`` picks)."""

    kind: str
    temperature: float
    threshold: float
    rules: SamplingRules = NO_RULES
    other_top_k: int = 0
    token_id: int = 0
    draw: float = 0.0


def answer(prepared: dist.Prepared, question: WheelQuestion, model: LoadedModel) -> Answer:
    """The question's answer, from a distribution prepared at its temperature."""
    q = question
    if q.kind == "wheel":
        info = model.token_info
        return dist.build_distribution(prepared, q.threshold, q.other_top_k, info, q.rules)
    if q.kind == "score":
        return dist.score_token(prepared, q.token_id, q.threshold, model.token_text, q.rules)
    if q.kind == "land":
        return dist.land_on_wheel(prepared, q.threshold, q.draw, q.rules)
    if q.kind == "other":
        return dist.other_token_for_draw(prepared, q.threshold, q.draw, q.rules)
    raise ValueError(f"unknown wheel question {q.kind!r}")


def _too_many(prepared: dist.Prepared, question: WheelQuestion, most: int | None) -> bool:
    if most is None or question.kind != "wheel":
        return False
    return int(prepared.above(question.threshold).sum()) > most


class WheelSide(Protocol):
    """What the registry asks of wherever the logits are: here or in the child."""

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor: ...

    def ask(self, model: LoadedModel, ids: Sequence[int], question: WheelQuestion) -> Any: ...

    def prefetch(self, model: LoadedModel, ids: Sequence[int], session: Hashable) -> object: ...

    def drop_model(self, model_id: str) -> None: ...


def _tensor_bytes(value: torch.Tensor) -> int:
    return int(value.numel() * value.element_size())


def _prepared_bytes(value: dist.Prepared) -> int:
    return value.nbytes


class Wheels:
    """The logits cache, the prepared distributions (the wheel, the append after it and
    a spin share one softmax and one sort) and the prefetches that fill the cache, over
    an engine that runs the forward passes in this process. ``cache_bytes`` 0 (the naive
    engine) keeps nothing."""

    def __init__(self, engine: Any, dtype: str, cache_bytes: int) -> None:
        self.engine = engine
        self.dtype = dtype
        self.cache: LogitsCache[LogitsKey, torch.Tensor] = LogitsCache(cache_bytes, _tensor_bytes)
        self.prepared_cache: LogitsCache[PreparedKey, dist.Prepared] = LogitsCache(
            cache_bytes // 2, _prepared_bytes
        )
        self.prefetches = Prefetches(self.cache)
        self.forward_passes = 0  # logits asked of the engine, not found in the cache

    def _key(self, model: LoadedModel, ids: Sequence[int]) -> LogitsKey:
        return (model.spec.id, self.dtype, tuple(ids))

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        """From the cache, else from the engine (which reuses KV prefixes and batches
        concurrent one-token steps), waiting for it."""
        key = self._key(model, ids)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        value: torch.Tensor = self.engine.logits(model, key[2])
        self.forward_passes += 1
        self.cache.put(key, value)
        return value

    def logits_later(self, model: LoadedModel, ids: Sequence[int]) -> Future[torch.Tensor]:
        """The same, without waiting: a done future on a cache hit, else the engine's
        (``submit``), whose logits go into the cache when they come."""
        key = self._key(model, ids)
        cached = self.cache.get(key)
        if cached is not None:
            done: Future[torch.Tensor] = Future()
            done.set_result(cached)
            return done
        future: Future[torch.Tensor] = self.engine.submit(model, key[2])
        self.forward_passes += 1
        future.add_done_callback(functools.partial(self._keep, key))
        return future

    def _keep(self, key: LogitsKey, future: Future[torch.Tensor]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.cache.put(key, future.result())

    def _prepared_key(self, model: LoadedModel, ids: Sequence[int], t: float) -> PreparedKey:
        return (*self._key(model, ids), t)

    def prepared(
        self,
        model: LoadedModel,
        ids: Sequence[int],
        temperature: float,
        logits: Callable[[], torch.Tensor],
    ) -> dist.Prepared:
        """The distribution after ``ids`` at ``temperature``, made once from ``logits()``
        (called only when it is not cached) and cached."""
        key = self._prepared_key(model, ids, temperature)
        prepared = self.prepared_cache.get(key)
        if prepared is None:
            prepared = dist.Prepared(logits(), temperature)
            self.prepared_cache.put(key, prepared)
        return prepared

    def ask(self, model: LoadedModel, ids: Sequence[int], question: WheelQuestion) -> Answer:
        """The answer, on the asking thread (a request thread of this process), with one
        torch thread: request threads run many at once, and their float64 vector work
        gains nothing from a second thread that the model thread needs."""
        with one_torch_thread():
            fetch = functools.partial(self.logits, model, ids)
            return answer(self.prepared(model, ids, question.temperature, fetch), question, model)

    def ask_later(
        self,
        model: LoadedModel,
        ids: Sequence[int],
        question: WheelQuestion,
        run: Callable[[Callable[[], None]], object],
        most_wedges: int | None = None,
    ) -> Future[Answer]:
        """The answer without waiting for the forward pass: once the logits are here,
        ``run`` computes it (on a thread that is not the model thread's). A wheel of more
        than ``most_wedges`` wedges is answered :data:`TOO_MANY_WEDGES` instead."""
        answered: Future[Answer] = Future()

        def compute(logits: Future[torch.Tensor] | None) -> None:
            # no logits: the distribution was cached (if evicted since, they are asked again)
            fetch = (
                logits.result if logits is not None else functools.partial(self.logits, model, ids)
            )
            try:
                prepared = self.prepared(model, ids, question.temperature, fetch)
                if _too_many(prepared, question, most_wedges):
                    answered.set_result(TOO_MANY_WEDGES)
                else:
                    answered.set_result(answer(prepared, question, model))
            except BaseException as exc:  # the asker must always hear back
                answered.set_exception(exc)

        if self._prepared_key(model, ids, question.temperature) in self.prepared_cache:
            run(functools.partial(compute, None))
        else:
            later = self.logits_later(model, ids)
            later.add_done_callback(lambda done: run(functools.partial(compute, done)))
        return answered

    def prefetch(self, model: LoadedModel, ids: Sequence[int], session: Hashable) -> None:
        """The logits after ``ids`` at low priority, into the cache, not waited for."""
        self.prefetches.start(self.engine, model, self._key(model, ids), session)

    def drop_model(self, model_id: str) -> None:
        self.cache.drop_model(model_id)
        self.prepared_cache.drop_model(model_id)


@contextmanager
def one_torch_thread() -> Iterator[None]:
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

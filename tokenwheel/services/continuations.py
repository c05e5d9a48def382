"""Greedy and sampled continuations of a text, for the lab's comparison.

Both walk from the same token ids, one token a step, each step one next-token
distribution through the model gateway (so through the logits cache and the engine,
which reuses the KV prefix: a step after the first costs one token). The greedy path
takes the most likely token (ties by id, as the wheel orders them); the sampled path
draws as a spin lands, with the sampling rules, at the wheel's default threshold. A path
stops after ``steps`` tokens, after the model's end-of-sequence token (included), or
when the context window is full. The two paths run side by side, one step each at a
time on two threads, so the engine serves both steps in one batched forward pass.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tokenwheel.domain.rules import DEFAULT_THRESHOLD, MAX_THRESHOLD
from tokenwheel.inference.types import NO_RULES, SamplingRules, TokenProbability

from .gateway import ModelGateway

STEPS, END_OF_SEQUENCE, CONTEXT_LIMIT = "steps", "end_of_sequence", "context_limit"


@dataclass(frozen=True)
class Continuation:
    """One path: its tokens (probabilities at the asked temperature, before any rule),
    their text decoded together, and the sum of their natural-log probabilities."""

    tokens: tuple[TokenProbability, ...]
    text: str
    log_probability: float
    stopped: str  # STEPS | END_OF_SEQUENCE | CONTEXT_LIMIT


class Continuations:
    def __init__(self, models: ModelGateway) -> None:
        self.models = models

    def most_likely(self, model: str, ids: Sequence[int], temperature: float) -> TokenProbability:
        """The argmax: at the highest threshold no token (or only a certain one) has a
        wedge, and the Other wedge's first listed token is the most likely (ties by id)."""
        wheel = self.models.distribution(model, ids, temperature, MAX_THRESHOLD, 1)
        return (wheel.above_threshold_tokens or wheel.other_category.sample_tokens)[0]

    def drawn(
        self,
        model: str,
        ids: Sequence[int],
        temperature: float,
        rules: SamplingRules,
        draw: float,
    ) -> TokenProbability:
        """Where ``draw`` stops a spin of the wheel at the default threshold, with the
        rules (the spin's own landing code), and that token's place in the distribution."""
        landing = self.models.land_on_wheel(model, ids, temperature, DEFAULT_THRESHOLD, draw, rules)
        scored = self.models.score(
            model, ids, landing.token_id, temperature, DEFAULT_THRESHOLD, rules
        )
        info = self.models.token_info(model, landing.token_id)
        return TokenProbability(
            token_id=scored.token_id,
            token_text=scored.token_text,
            probability=scored.probability,
            log_probability=scored.log_probability,
            display_text=info.display_text,
            partial_utf8=info.partial_utf8,
            special=info.special,
            end_of_sequence=info.end_of_sequence,
            kept=scored.kept,
            sampling_probability=scored.sampling_probability,
        )

    def compare(
        self,
        model: str,
        ids: Sequence[int],
        steps: int,
        temperature: float,
        seed: int,
        rules: SamplingRules = NO_RULES,
    ) -> tuple[Continuation, Continuation]:
        """``(greedy, sampled)`` from ``ids``; the sampled path's draws are
        ``random.Random(seed)``'s numbers, one a step."""
        limit = self.models.max_context(model)
        rng = random.Random(seed)
        greedy: list[TokenProbability] = []
        sampled: list[TokenProbability] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenwheel-greedy") as pool:
            for _ in range(steps):
                greedy_on = _can_step(greedy, len(ids), limit)
                sampled_on = _can_step(sampled, len(ids), limit)
                if not (greedy_on or sampled_on):
                    break
                # the greedy step on the helper thread while this one draws: the engine
                # batches the two one-token steps into one forward pass
                ahead = (
                    pool.submit(self.most_likely, model, _ids(ids, greedy), temperature)
                    if greedy_on
                    else None
                )
                if sampled_on:
                    draw = rng.random()
                    sampled.append(self.drawn(model, _ids(ids, sampled), temperature, rules, draw))
                if ahead is not None:
                    greedy.append(ahead.result())
        return self.path(model, greedy, steps), self.path(model, sampled, steps)

    def path(self, model: str, tokens: list[TokenProbability], steps: int) -> Continuation:
        if tokens and tokens[-1].end_of_sequence:
            stopped = END_OF_SEQUENCE
        elif len(tokens) >= steps:
            stopped = STEPS
        else:
            stopped = CONTEXT_LIMIT
        return Continuation(
            tokens=tuple(tokens),
            text=self.models.decode(model, [t.token_id for t in tokens]),
            log_probability=math.fsum(t.log_probability for t in tokens),
            stopped=stopped,
        )


def _ids(start: Sequence[int], tokens: list[TokenProbability]) -> tuple[int, ...]:
    return tuple(start) + tuple(t.token_id for t in tokens)


def _can_step(tokens: list[TokenProbability], start: int, limit: int) -> bool:
    """Not stopped by the end-of-sequence token, and the window has room for one more."""
    ended = bool(tokens) and tokens[-1].end_of_sequence
    return not ended and start + len(tokens) < limit

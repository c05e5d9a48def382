"""How a token is chosen: scored at the request's settings, or drawn by a spin or from
the Other wedge. The result is the :class:`~tokenwheel.domain.events.TokenFacts` that the
``TokenAppended`` event records."""

from __future__ import annotations

import random

from tokenwheel.domain.errors import InvalidCommand
from tokenwheel.domain.events import TokenFacts
from tokenwheel.domain.session import SessionState
from tokenwheel.inference.types import NO_RULES, SamplingRules, ScoredToken, WheelLanding

from .gateway import ModelGateway
from .results import AppendRequest, SpinRequest


def facts_from_score(
    scored: ScoredToken,
    selection: str,
    *,
    from_other: bool,
    threshold: float,
    temperature: float,
    rules: SamplingRules = NO_RULES,
) -> TokenFacts:
    """The one translation from the model's score of a token to the facts recorded."""
    in_other = scored.category == "other"
    return TokenFacts(
        token_id=scored.token_id,
        token_text=scored.token_text,
        probability=scored.probability,
        log_probability=scored.log_probability,
        category=scored.category,
        sampled_from_other=from_other,
        selection=selection,
        threshold=threshold,
        temperature=temperature,
        rank=scored.rank,
        other_total_probability=scored.other_total_probability if in_other else None,
        other_token_count=scored.other_token_count if in_other else None,
        selected_token_rank=scored.rank_in_other if in_other else None,
        top_k=rules.top_k,
        top_p=rules.top_p,
        min_p=rules.min_p,
        sampling_probability=scored.sampling_probability,
    )


class TokenChooser:
    def __init__(self, models: ModelGateway, rng: random.Random) -> None:
        self.models = models
        self.rng = rng

    def draw(self, state: SessionState, seed: int | None = None) -> float:
        """One uniform number in [0, 1) for a spin or an Other sample. With a seed (the
        request's, else the session's) it is a function of the seed and the session's
        version, so the same seed and the same actions give the same tokens anywhere."""
        seed = seed if seed is not None else state.seed
        if seed is None:
            return self.rng.random()
        # str seeds are hashed with SHA-512: stable across processes and Python builds
        return random.Random(f"{seed}:{state.version}").random()

    def requested(self, state: SessionState, request: AppendRequest) -> TokenFacts:
        """The token an append names (or samples from the Other wedge), scored."""
        model, ids = state.model_name, state.token_ids
        if request.category is not None:
            draw = self.draw(state)
            token_id = self.models.other_token(
                model, ids, request.temperature, request.threshold, draw, request.rules
            )
            selection = "other"
        elif request.token_id is not None:
            token_id, selection = request.token_id, "explicit"
        else:
            assert request.token_text is not None  # check_append_form ran first
            token_id = self.models.token_id_for_text(model, request.token_text)
            selection = "explicit"
        facts = self.scored(
            state,
            token_id,
            selection,
            from_other=selection == "other",
            threshold=request.threshold,
            temperature=request.temperature,
            rules=request.rules,
        )
        if request.token_text is not None and facts.token_text != request.token_text:
            raise InvalidCommand(
                f"token_text {request.token_text!r} does not match token {token_id}, "
                f"whose text is {facts.token_text!r}."
            )
        return facts

    def spun(self, state: SessionState, request: SpinRequest) -> tuple[TokenFacts, WheelLanding]:
        """Where one uniform draw stops the wheel, and the token there, scored."""
        landing = self.models.land_on_wheel(
            state.model_name,
            state.token_ids,
            request.temperature,
            request.threshold,
            self.draw(state, request.seed),
            request.rules,
        )
        facts = self.scored(
            state,
            landing.token_id,
            "spin",
            from_other=landing.wedge == "other",
            threshold=request.threshold,
            temperature=request.temperature,
            rules=request.rules,
        )
        return facts, landing

    def scored(
        self,
        state: SessionState,
        token_id: int,
        selection: str,
        *,
        from_other: bool,
        threshold: float,
        temperature: float,
        rules: SamplingRules = NO_RULES,
    ) -> TokenFacts:
        scored = self.models.score(
            state.model_name, state.token_ids, token_id, temperature, threshold, rules
        )
        return facts_from_score(
            scored,
            selection,
            from_other=from_other,
            threshold=threshold,
            temperature=temperature,
            rules=rules,
        )

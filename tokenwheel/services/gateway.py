"""The model side in the domain's words.

Every call that may load a model, wait for the inference process or look up a token goes
through :class:`ModelGateway`, which raises domain errors only: a full model queue is
Overloaded (503 with Retry-After), a model that cannot load is ModelUnavailable (503), an
unknown name UnknownModel (400), a bad token or an empty Other wedge InvalidCommand (400).
So no use case can let an inference error through as a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tokenwheel.domain.errors import InvalidCommand, ModelUnavailable, Overloaded, UnknownModel
from tokenwheel.domain.session import SessionState
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.inference.types import (
    NO_RULES,
    Distribution,
    EmptyOtherError,
    InvalidTokenError,
    ModelInfo,
    ModelUnavailableError,
    OverloadedError,
    SamplingRules,
    ScoredPosition,
    ScoredToken,
    UnknownModelError,
    WheelLanding,
)

from .ports import LanguageModels

log = logging.getLogger(__name__)


@contextmanager
def model_errors() -> Iterator[None]:
    try:
        yield
    except OverloadedError as exc:
        raise Overloaded(str(exc)) from exc
    except ModelUnavailableError as exc:
        raise ModelUnavailable(str(exc)) from exc
    except UnknownModelError as exc:
        raise UnknownModel(str(exc)) from exc
    except (InvalidTokenError, EmptyOtherError) as exc:
        raise InvalidCommand(str(exc)) from exc


class ModelGateway:
    """The :class:`~.ports.LanguageModels` port with domain errors, one typed method each."""

    def __init__(self, models: LanguageModels, prefetch: bool = False) -> None:
        self.models = models
        self.prefetching = prefetch  # TOKENWHEEL_PREFETCH, for the student's changes

    def default_model(self) -> tuple[str, str | None]:
        with model_errors():
            return self.models.default_model()

    def describe(self) -> list[ModelInfo]:
        with model_errors():
            return self.models.describe()

    def require(self, model_id: str) -> None:
        """Load ``model_id`` now if it is not loaded (a first session waits for it)."""
        with model_errors():
            self.models.get(model_id)

    def loaded(self, model_id: str) -> bool:
        return self.models.loaded(model_id)

    def encode_prompt(self, model_id: str, text: str) -> tuple[int, ...]:
        with model_errors():
            return tuple(self.models.encode_prompt(model_id, text))

    def decode(self, model_id: str, ids: Sequence[int]) -> str:
        with model_errors():
            return self.models.decode(model_id, ids)

    def token_id_for_text(self, model_id: str, text: str) -> int:
        with model_errors():
            return self.models.token_id_for_text(model_id, text)

    def token_info(self, model_id: str, token_id: int) -> TokenInfo:
        with model_errors():
            return self.models.token_info(model_id, token_id)

    def max_context(self, model_id: str) -> int:
        with model_errors():
            return self.models.max_context(model_id)

    def check_room(self, model_id: str, ids: Sequence[int]) -> None:
        """The model cannot look at more tokens than its context window holds."""
        limit = self.max_context(model_id)
        if len(ids) >= limit:
            raise InvalidCommand(
                f"The text has reached {model_id}'s context window of {limit} tokens. "
                "Undo or set a shorter prompt."
            )

    def prompt_ids(
        self, model_id: str, prompt: str, max_tokens: int, what: str = "Prompt"
    ) -> tuple[int, ...]:
        """The prompt as the model sees it, within ``max_tokens`` and the window (which
        keeps room for one generated token)."""
        token_ids = self.encode_prompt(model_id, prompt)
        limit = min(max_tokens, self.max_context(model_id) - 1)
        if len(token_ids) > limit:
            raise InvalidCommand(
                f"{what} is {len(token_ids)} tokens long for {model_id}; the limit is {limit}."
            )
        return token_ids

    def distribution(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        other_top_k: int,
        rules: SamplingRules = NO_RULES,
    ) -> Distribution:
        with model_errors():
            return self.models.distribution(
                model_id, ids, temperature, threshold, other_top_k, rules
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
        with model_errors():
            return self.models.score(model_id, ids, token_id, temperature, threshold, rules)

    def other_token(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> int:
        with model_errors():
            return self.models.other_token(model_id, ids, temperature, threshold, draw, rules)

    def land_on_wheel(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> WheelLanding:
        with model_errors():
            return self.models.land_on_wheel(model_id, ids, temperature, threshold, draw, rules)

    def score_text(
        self, model_id: str, ids: Sequence[int], alternatives: int
    ) -> tuple[ScoredPosition, ...]:
        with model_errors():
            return self.models.score_text(model_id, ids, alternatives)

    def prefetch_next(self, state: SessionState) -> None:
        """Start the session's next distribution at low priority and return at once: a
        student who just appended, spun, undid or set a prompt asks for that wheel next
        (the page after watching a spin for 3.6 s). Best effort: a prefetch that cannot
        start is not made, and never fails the change that asked for it."""
        if not self.prefetching or not state.token_ids:
            return
        try:
            self.models.prefetch(state.model_name, state.token_ids, state.session_id)
        except Exception:  # the next wheel computes it itself: nothing is lost
            log.warning("prefetch for session %s… failed", state.session_id[:8], exc_info=True)

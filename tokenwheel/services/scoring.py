"""Scoring a text: how likely the model finds each of its tokens, from one forward pass.

No session and no event: the text is held to the prompt's limits (a string with
something visible, at most TOKENWHEEL_MAX_PROMPT_CHARS characters, then at most
TOKENWHEEL_MAX_PROMPT_TOKENS tokens and the window) and tokenized as a prompt is, BOS
included where the tokenizer adds one, so the probabilities are the wheel's for the same
ids. The first token the model sees has no context and gets no probability: with a BOS
that is the BOS, and the text's first token is conditioned on it; without one it is the
text's first token. Perplexity is over the scored tokens only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tokenwheel.domain.errors import InvalidCommand
from tokenwheel.domain.rules import SCORE_ALTERNATIVES, check_prompt
from tokenwheel.inference.types import ScoredPosition
from tokenwheel.settings import Settings

from .gateway import ModelGateway
from .ports import LanguageModels


@dataclass(frozen=True)
class TextScore:
    model_name: str
    text: str
    positions: tuple[ScoredPosition, ...]
    log_probability: float  # natural log, over the scored positions
    # exp(-mean log p); None when no position is scored, or when it is too large for a
    # float (a token the model gave no chance at all)
    perplexity: float | None

    @property
    def scored_count(self) -> int:
        return sum(1 for p in self.positions if p.scored)


class TextScoring:
    def __init__(self, models: LanguageModels, settings: Settings) -> None:
        self.models = ModelGateway(models)
        self.settings = settings

    def score(self, text: object, model_name: str | None = None) -> TextScore:
        # Checked before anything touches the model: an oversized text costs nothing.
        checked = check_prompt(text, self.settings.max_prompt_chars, what="Text")
        if model_name is None:
            model_name, _ = self.models.default_model()
        ids = self.models.prompt_ids(
            model_name, checked, self.settings.max_prompt_tokens, what="Text"
        )
        if not ids:
            raise InvalidCommand(f"The text has no tokens for {model_name}.")
        positions = self.models.score_text(model_name, ids, SCORE_ALTERNATIVES)
        logps = [p.token.log_probability for p in positions if p.scored]
        total = math.fsum(logps)
        return TextScore(
            model_name=model_name,
            text=checked,
            positions=positions,
            log_probability=total,
            perplexity=_perplexity(total, len(logps)),
        )


def _perplexity(log_probability: float, count: int) -> float | None:
    if count == 0:
        return None
    try:
        return math.exp(-log_probability / count)
    except OverflowError:
        return None

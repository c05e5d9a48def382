"""How a session is shown, built in one place for students and teachers alike.

``current_text`` is the prompt verbatim + all generated ids decoded at once (so a
character split across tokens shows whole). If the model cannot load here any more (an
archived session on a model this server no longer has), the text falls back to the
recorded token texts joined, and each token is described from its recorded text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from tokenwheel.domain.errors import ModelUnavailable, UnknownModel
from tokenwheel.domain.session import SessionState
from tokenwheel.inference.tokens import TokenInfo, visible

from .gateway import ModelGateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionView:
    """A session as it is shown. ``token_infos`` describes each generated token (display
    text with visible whitespace, partial UTF-8, special, end of sequence)."""

    state: SessionState
    current_text: str
    last_accessed: datetime
    token_infos: Mapping[int, TokenInfo]

    @property
    def session_id(self) -> str:
        return self.state.session_id


def recorded_info(text: str) -> TokenInfo:
    """A token described from its recorded text alone (the model is not here)."""
    return TokenInfo(text, visible(text), "\ufffd" in text, False, False)


class TokenInfos(Mapping[int, TokenInfo]):
    """How each recorded token (id -> recorded text) is shown, looked up only when an
    answer asks (a wheel's answer shows no history and asks for none); described from
    its recorded text when the model cannot load here."""

    def __init__(self, model_name: str, recorded: Mapping[int, str], models: ModelGateway) -> None:
        self._model_name = model_name
        self._recorded = recorded
        self._models = models

    def __getitem__(self, token_id: int) -> TokenInfo:
        text = self._recorded[token_id]
        try:
            return self._models.token_info(self._model_name, token_id)
        except (ModelUnavailable, UnknownModel) as exc:
            log.warning("describing a token from its recorded text: %s", exc.message)
            return recorded_info(text)

    def __iter__(self) -> Iterator[int]:
        return iter(self._recorded)

    def __len__(self) -> int:
        return len(self._recorded)


class SessionViews:
    """The one builder of :class:`SessionView`."""

    def __init__(self, models: ModelGateway) -> None:
        self.models = models

    def text(self, state: SessionState) -> str:
        """What the student sees: the prompt + the generated ids decoded together ("" before
        a prompt)."""
        if state.prompt is None:
            return ""
        if not state.generated:
            return state.prompt
        try:
            return state.prompt + self.models.decode(state.model_name, state.generated_ids)
        except (ModelUnavailable, UnknownModel) as exc:
            log.warning("decoding with the recorded token texts: %s", exc.message)
            return state.prompt + "".join(t.token_text for t in state.generated)

    def text_if_loaded(self, state: SessionState) -> str:
        """:meth:`text` without loading a model for it: decoded when the session's model is
        loaded, else the recorded token texts joined (a list of sessions must not load
        every model it names)."""
        if state.generated and not self.models.loaded(state.model_name):
            return (state.prompt or "") + "".join(t.token_text for t in state.generated)
        return self.text(state)

    def view(self, state: SessionState, last_accessed: datetime | None = None) -> SessionView:
        """``last_accessed`` defaults to the time of the session's last event."""
        return SessionView(
            state=state,
            current_text=self.text(state),
            last_accessed=last_accessed or state.updated_at,
            token_infos=self.infos(
                state.model_name, {t.token_id: t.token_text for t in state.generated}
            ),
        )

    def infos(self, model_name: str, recorded: Mapping[int, str]) -> Mapping[int, TokenInfo]:
        """How the tokens ``recorded`` (id -> recorded text) are shown."""
        return TokenInfos(model_name, recorded, self.models)

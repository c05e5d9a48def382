"""What the use cases take and give back: plain, frozen values.

Each result of a change is built from the session right before and right after it (plus
a receipt of what the events do not hold), so a request repeated under its
Idempotency-Key gets exactly the result it got the first time (``repeated`` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenwheel.domain.rules import DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD
from tokenwheel.domain.session import GeneratedToken, SessionState
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.inference.types import (
    NO_RULES,
    Distribution,
    ModelInfo,
    SamplingRules,
    WheelLanding,
)

from .views import SessionView

# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class AppendRequest:
    """One of: ``token_id`` (optionally with agreeing ``token_text``), ``token_text``
    alone, or ``category="other"``; plus the settings that decide the recorded facts."""

    token_id: int | None = None
    token_text: str | None = None
    category: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    temperature: float = DEFAULT_TEMPERATURE
    rules: SamplingRules = NO_RULES


@dataclass(frozen=True)
class SpinRequest:
    """The wheel's settings, and a seed that overrides the session's for this draw."""

    threshold: float = DEFAULT_THRESHOLD
    temperature: float = DEFAULT_TEMPERATURE
    seed: int | None = None
    rules: SamplingRules = NO_RULES


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Changed:
    """Any change: the session afterwards, and whether this is a repeated answer."""

    view: SessionView
    repeated: bool = field(default=False, kw_only=True)

    @property
    def session_id(self) -> str:
        return self.view.session_id

    @property
    def state(self) -> SessionState:
        return self.view.state


@dataclass(frozen=True)
class Created(Changed):
    pass


@dataclass(frozen=True)
class PromptResult(Changed):
    token_count: int


@dataclass(frozen=True)
class AppendResult(Changed):
    previous_text: str
    token: GeneratedToken


@dataclass(frozen=True)
class SpinResult(AppendResult):
    landing: WheelLanding


@dataclass(frozen=True)
class UndoResult(Changed):
    previous_text: str
    removed: GeneratedToken
    removed_info: TokenInfo


@dataclass(frozen=True)
class DeleteResult:
    session_id: str
    version: int


@dataclass(frozen=True)
class DistributionResult:
    view: SessionView
    distribution: Distribution


@dataclass(frozen=True)
class ModelsResult:
    models: list[ModelInfo]
    default_model: str
    configured_default_model: str
    default_reason: str | None


@dataclass(frozen=True)
class Readiness:
    """``checks`` maps each check (database, model) to "ok" or what is wrong."""

    checks: dict[str, str]
    default_model: str | None

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())

"""The results of changes, built from the session right before and right after each.

A change answered again for its Idempotency-Key is built the same way from the stored
versions, so a repeated answer is the first answer (``repeated`` says so).
"""

from __future__ import annotations

from tokenwheel.domain.session import SessionState
from tokenwheel.inference.types import WheelLanding

from .results import AppendResult, PromptResult, SpinResult, UndoResult
from .views import SessionViews


class Outcomes:
    def __init__(self, views: SessionViews) -> None:
        self.views = views

    def prompted(
        self, before: SessionState, after: SessionState, repeated: bool = False
    ) -> PromptResult:
        return PromptResult(
            self.views.view(after), repeated=repeated, token_count=len(after.prompt_token_ids)
        )

    def appended(
        self, before: SessionState, after: SessionState, repeated: bool = False
    ) -> AppendResult:
        return AppendResult(
            self.views.view(after),
            repeated=repeated,
            previous_text=self.views.text(before),
            token=after.generated[-1],
        )

    def spun(
        self,
        before: SessionState,
        after: SessionState,
        landing: WheelLanding,
        repeated: bool = False,
    ) -> SpinResult:
        appended = self.appended(before, after, repeated)
        return SpinResult(
            appended.view,
            repeated=repeated,
            previous_text=appended.previous_text,
            token=appended.token,
            landing=landing,
        )

    def undone(
        self, before: SessionState, after: SessionState, repeated: bool = False
    ) -> UndoResult:
        removed = before.generated[-1]
        return UndoResult(
            self.views.view(after),
            repeated=repeated,
            previous_text=self.views.text(before),
            removed=removed,
            removed_info=self.views.models.token_info(before.model_name, removed.token_id),
        )

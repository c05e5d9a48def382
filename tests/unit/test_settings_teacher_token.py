"""The teacher token is read from the environment and never printed."""

from __future__ import annotations

from tokenwheel.settings import Settings


def test_teacher_token_from_env_and_hidden_from_repr() -> None:
    settings = Settings.from_env({"TOKENWHEEL_TEACHER_TOKEN": "s3cret-value"})
    assert settings.teacher_token == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert Settings.from_env({}).teacher_token is None
    assert Settings.from_env({"TOKENWHEEL_TEACHER_TOKEN": ""}).teacher_token is None  # off

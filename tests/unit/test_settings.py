"""Settings refuse values that would break the service, naming the variable."""

from __future__ import annotations

import json

import pytest

from tokenwheel.settings import Settings, SettingsError


def test_defaults_and_durations() -> None:
    s = Settings.from_env({"TOKENWHEEL_SESSION_TTL": "15m", "TOKENWHEEL_RETENTION": "0"})
    assert (s.session_ttl, s.retention) == (900, 0)
    assert Settings.from_env({}).session_ttl == 3600


@pytest.mark.parametrize("ttl", ["0", "0s", "0.0m"])
def test_a_session_ttl_of_zero_is_refused(ttl: str) -> None:
    """Every session would be expired the moment it was made."""
    with pytest.raises(SettingsError, match="TOKENWHEEL_SESSION_TTL"):
        Settings.from_env({"TOKENWHEEL_SESSION_TTL": ttl})


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://cache:6380", "redis+unix:///run/redis.sock"]
)
def test_redis_urls_the_rate_limiter_understands(url: str) -> None:
    assert Settings.from_env({"TOKENWHEEL_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url", ["unix:///run/redis.sock", "http://cache", "127.0.0.1:6379"])
def test_other_redis_urls_are_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="TOKENWHEEL_REDIS_URL"):
        Settings.from_env({"TOKENWHEEL_REDIS_URL": url})


@pytest.mark.parametrize("name", ["RATE_LIMIT", "LOW_THRESHOLD_RATE_LIMIT"])
def test_rate_limits_are_checked_at_start_up(name: str) -> None:
    variable = f"TOKENWHEEL_{name}"
    key = name.lower()
    assert getattr(Settings.from_env({variable: "off"}), key) == ""
    assert getattr(Settings.from_env({variable: "20 per minute"}), key) == "20 per minute"
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: "twenty a minute"})


def extra(*ids: str) -> dict[str, str]:
    models = [{"id": i, "source": "local", "local_path": f"/models/{i}"} for i in ids]
    return {"TOKENWHEEL_EXTRA_MODELS": json.dumps(models)}


def test_extra_models_are_added() -> None:
    assert [m["id"] for m in Settings.from_env(extra("tiny", "small")).extra_models] == [
        "tiny",
        "small",
    ]


@pytest.mark.parametrize("ids", [("tiny", "tiny"), ("gpt2",), ("smollm2-135m",)])
def test_an_extra_model_may_not_reuse_an_id(ids: tuple[str, ...]) -> None:
    """Two entries with one id would shadow each other (and /api/models could show two
    defaults)."""
    with pytest.raises(SettingsError, match="TOKENWHEEL_EXTRA_MODELS.*already"):
        Settings.from_env(extra(*ids))

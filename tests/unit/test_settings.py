"""Settings refuse values that would break the service, naming the variable."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from tokenwheel.settings import (
    Settings,
    SettingsError,
    parse_bytes,
    parse_duration,
    parse_extra_models,
    parse_rate_limit,
)


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


# What the if-chain Settings (before pydantic-settings) gave with no variables set.
OLD_DEFAULTS: dict[str, object] = {
    "default_model": "gpt2",
    "session_ttl": 3600.0,
    "retention": 30 * 86400.0,
    "purge_interval": 300.0,
    "scheduler_enabled": True,
    "offline": False,
    "hub_timeout": 3.0,
    "torch_threads": 0,
    "max_prompt_chars": 4000,
    "max_prompt_tokens": 512,
    "max_generated_tokens": 512,
    "max_context": None,
    "dtype": "float32",
    "preload": (),
    "model_memory_budget": None,
    "extra_models": (),
    "engine": "fast",
    "quantized_models": (),  # none: every model is more than 1e-3 from float32 on llama.cpp
    "inference": "process",
    "kv_cache_bytes": 1 << 30,
    "logits_cache_bytes": 128 << 20,
    "max_batch": 32,
    "model_queue": 256,
    "prefetch": True,
    "log_level": "INFO",
    "teacher_token": None,
    "max_body_bytes": 64 * 1024,
    "rate_limit": "6000/minute",
    "sessions_per_hour": 600,
    "low_threshold_rate_limit": "10/minute",
    "redis_url": None,
    "redis_prefix": "tokenwheel",
    "trusted_proxies": 0,
    "cors_origins": (),
    "idempotency_window": 86400.0,
    "live_max_streams": 8,
    "live_stream_duration": 300.0,
}
DERIVED = {"instance_path", "database_url", "model_cache_dir"}


@pytest.mark.parametrize("make", [lambda: Settings(), lambda: Settings.from_env({})])
def test_every_default_is_the_old_one(
    make: Callable[[], Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = make()
    assert set(Settings.model_fields) == set(OLD_DEFAULTS) | DERIVED
    for name, old in OLD_DEFAULTS.items():
        assert (getattr(s, name), type(getattr(s, name))) == (old, type(old)), name
    instance = Path("instance").resolve()
    assert s.instance_path == instance
    assert s.database_url == f"sqlite:///{instance / 'tokenwheel.sqlite3'}"
    assert s.model_cache_dir == s.cache_dir == instance / "model-cache"


def test_derived_defaults_follow_the_instance_path(tmp_path: Path) -> None:
    s = Settings(instance_path=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'tokenwheel.sqlite3'}"
    assert s.cache_dir == tmp_path / "model-cache"
    env = Settings.from_env({"TOKENWHEEL_INSTANCE_PATH": str(tmp_path / "x" / "..")})
    assert env.instance_path == tmp_path  # resolved
    assert env.cache_dir == tmp_path / "model-cache"


@pytest.mark.parametrize(
    ("variable", "text", "attribute", "value"),
    [
        ("DATABASE_URL", "postgresql://db/wheel", "database_url", "postgresql://db/wheel"),
        ("DEFAULT_MODEL", "smollm2-135m", "default_model", "smollm2-135m"),
        ("SESSION_TTL", "90", "session_ttl", 90.0),
        ("RETENTION", "30d", "retention", 30 * 86400.0),
        ("PURGE_INTERVAL", "1.5m", "purge_interval", 90.0),
        ("HUB_TIMEOUT", "10s", "hub_timeout", 10.0),
        ("IDEMPOTENCY_WINDOW", "1h", "idempotency_window", 3600.0),
        ("SCHEDULER", "off", "scheduler_enabled", False),
        ("OFFLINE", "yes", "offline", True),
        ("TORCH_THREADS", "4", "torch_threads", 4),
        ("MODEL_CACHE_DIR", "/srv/cache/../models", "model_cache_dir", Path("/srv/models")),
        ("MAX_CONTEXT", "1024", "max_context", 1024),
        ("DTYPE", "bfloat16", "dtype", "bfloat16"),
        ("PRELOAD", " gpt2, ,smollm2-135m ", "preload", ("gpt2", "smollm2-135m")),
        ("MODEL_MEMORY_BUDGET", "2.5G", "model_memory_budget", int(2.5 * (1 << 30))),
        ("ENGINE", "naive", "engine", "naive"),
        ("QUANTIZED_MODELS", "smollm2-135m", "quantized_models", ("smollm2-135m",)),
        ("INFERENCE", "thread", "inference", "thread"),
        ("KV_CACHE", "2GiB", "kv_cache_bytes", 2 << 30),
        ("LOGITS_CACHE", "512MB", "logits_cache_bytes", 512 << 20),
        ("MAX_BATCH", "8", "max_batch", 8),
        ("MODEL_QUEUE", "10", "model_queue", 10),
        ("PREFETCH", "0", "prefetch", False),
        ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
        ("RATE_LIMIT", "none", "rate_limit", ""),
        ("SESSIONS_PER_HOUR", "0", "sessions_per_hour", 0),
        ("REDIS_PREFIX", "wheel2", "redis_prefix", "wheel2"),
        ("TRUSTED_PROXIES", "1", "trusted_proxies", 1),
        ("CORS_ORIGINS", "https://a.org/, *", "cors_origins", ("https://a.org", "*")),
    ],
)
def test_each_variable_sets_its_attribute(
    variable: str, text: str, attribute: str, value: object
) -> None:
    got = getattr(Settings.from_env({f"TOKENWHEEL_{variable}": text}), attribute)
    assert (got, type(got)) == (value, type(value))


def test_hf_hub_offline_is_the_fallback_for_offline() -> None:
    assert Settings.from_env({"HF_HUB_OFFLINE": "1"}).offline is True
    assert Settings.from_env({"TOKENWHEEL_OFFLINE": "", "HF_HUB_OFFLINE": "1"}).offline is True
    assert Settings.from_env({"TOKENWHEEL_OFFLINE": "0", "HF_HUB_OFFLINE": "1"}).offline is False
    with pytest.raises(SettingsError, match="^TOKENWHEEL_OFFLINE='maybe': expected true or false$"):
        Settings.from_env({"HF_HUB_OFFLINE": "maybe"})


def test_empty_and_other_variables_are_ignored() -> None:
    env = {
        "TOKENWHEEL_MAX_BATCH": "",
        "tokenwheel_max_batch": "x",  # names are case-sensitive, as before
        "max_batch": "x",
        "TOKENWHEEL_UNKNOWN": "x",
    }
    assert Settings.from_env(env).max_batch == 32


BOUNDS = [
    ("TORCH_THREADS", 0, 256),
    ("MAX_PROMPT_CHARS", 1, 1_000_000),
    ("MAX_PROMPT_TOKENS", 1, 100_000),
    ("MAX_GENERATED_TOKENS", 1, 100_000),
    ("MAX_BODY_BYTES", 1024, 64 << 20),
    ("SESSIONS_PER_HOUR", 0, 10_000_000),
    ("TRUSTED_PROXIES", 0, 10),
    ("MAX_CONTEXT", 2, 1_000_000),
    ("MAX_BATCH", 1, 256),
    ("MODEL_QUEUE", 1, 100_000),
]


@pytest.mark.parametrize(("name", "lower", "upper"), BOUNDS)
def test_whole_numbers_keep_their_bounds(name: str, lower: int, upper: int) -> None:
    variable = f"TOKENWHEEL_{name}"
    for fine in (lower, upper):
        assert getattr(Settings.from_env({variable: str(fine)}), name.lower()) == fine
    for wrong in (lower - 1, upper + 1):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({variable: str(wrong)})
        assert str(caught.value) == f"{variable}={wrong}: must be between {lower} and {upper}"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: "a dozen"})
    assert str(caught.value) == f"{variable}='a dozen': expected a whole number"


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("DTYPE", "float16", "TOKENWHEEL_DTYPE='float16': expected float32 or bfloat16"),
        ("ENGINE", "turbo", "TOKENWHEEL_ENGINE='turbo': expected fast or naive"),
        ("INFERENCE", "gpu", "TOKENWHEEL_INFERENCE='gpu': expected process or thread"),
        ("SCHEDULER", "sometimes", "TOKENWHEEL_SCHEDULER='sometimes': expected true or false"),
        (
            "SESSION_TTL",
            "an hour",
            "TOKENWHEEL_SESSION_TTL='an hour': expected a duration such as 3600, 15m, 1h or 30d",
        ),
        (
            "SESSION_TTL",
            "0m",
            "TOKENWHEEL_SESSION_TTL=0: every session would expire at once; use e.g. 1h",
        ),
        ("KV_CACHE", "lots", "TOKENWHEEL_KV_CACHE='lots': expected a size such as 512MB or 2.5GB"),
        (
            "CORS_ORIGINS",
            "https://a.org,b.org",
            "TOKENWHEEL_CORS_ORIGINS: 'b.org' is not an origin such as https://wheel.example.org",
        ),
        (
            "REDIS_URL",
            "http://cache",
            "TOKENWHEEL_REDIS_URL='http://cache': expected redis://host:port/db, "
            "rediss://… (TLS) or redis+unix:///path/to/redis.sock",
        ),
        ("EXTRA_MODELS", '{"id": "x"}', "TOKENWHEEL_EXTRA_MODELS: expected a JSON list of objects"),
    ],
)
def test_refusals_keep_their_messages(variable: str, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({f"TOKENWHEEL_{variable}": text})
    assert str(caught.value) == message


def test_no_validation_error_escapes_from_keyword_arguments() -> None:
    with pytest.raises(SettingsError, match="^TOKENWHEEL_MAX_BATCH=2.5: "):
        Settings(max_batch=2.5)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="^TOKENWHEEL_DTYPE='float16': expected float32"):
        Settings().with_overrides(dtype="float16")
    with pytest.raises(TypeError, match="no_such_setting"):
        Settings().with_overrides(no_such_setting=1)


def test_keyword_arguments_never_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENWHEEL_SESSION_TTL", "0")
    monkeypatch.setenv("TOKENWHEEL_DTYPE", "float16")
    monkeypatch.setenv("TOKENWHEEL_MAX_BATCH", "7")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    s = Settings(instance_path=tmp_path, scheduler_enabled=False)
    assert (s.session_ttl, s.dtype, s.max_batch, s.offline) == (3600.0, "float32", 32, False)
    assert s.with_overrides(retention=0).max_batch == 32
    with pytest.raises(SettingsError, match="TOKENWHEEL_SESSION_TTL"):
        Settings.from_env()  # reads os.environ
    monkeypatch.setenv("TOKENWHEEL_SESSION_TTL", "15m")
    monkeypatch.setenv("TOKENWHEEL_DTYPE", "bfloat16")
    s = Settings.from_env()
    assert (s.session_ttl, s.dtype, s.max_batch, s.offline) == (900.0, "bfloat16", 7, True)


def test_settings_are_frozen_and_overridden_by_copy(tmp_path: Path) -> None:
    s = Settings(instance_path=tmp_path, teacher_token="t0k3n")
    with pytest.raises(FrozenInstanceError):
        s.max_batch = 1  # type: ignore[misc]
    changed = s.with_overrides(max_batch=4, rate_limit="")
    assert (changed.max_batch, changed.rate_limit, changed.teacher_token) == (4, "", "t0k3n")
    assert (s.max_batch, s.rate_limit) == (32, "6000/minute")
    assert changed.database_url == s.database_url
    assert "t0k3n" not in repr(changed)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h", 3600.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration("X", text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("2500000000", 2_500_000_000), ("512MB", 512 << 20), ("2.5G", 5 << 29), ("2GiB", 2 << 30)],
)
def test_parse_bytes(text: str, size: int) -> None:
    assert parse_bytes("X", text) == size


def test_parse_rate_limit_and_extra_models() -> None:
    assert parse_rate_limit("X", " off ") == ""
    assert parse_rate_limit("X", "10 per second; 300 per hour") == "10 per second; 300 per hour"
    with pytest.raises(SettingsError, match="^X='often'"):
        parse_rate_limit("X", "often")
    hub = [{"id": "pythia-70m", "source": "hub", "hub_repo": "EleutherAI/pythia-70m"}]
    assert parse_extra_models(json.dumps(hub)) == tuple(hub)


@pytest.mark.parametrize("text", ["0", "0.5s", "2h"])
def test_a_live_stream_lasts_between_a_second_and_an_hour(text: str) -> None:
    with pytest.raises(SettingsError, match="TOKENWHEEL_LIVE_STREAM_DURATION"):
        Settings.from_env({"TOKENWHEEL_LIVE_STREAM_DURATION": text})
    assert Settings.from_env({"TOKENWHEEL_LIVE_STREAM_DURATION": "2m"}).live_stream_duration == 120

"""Typed settings, parsed once from ``TOKENWHEEL_*`` environment variables.

Nothing else in the package reads the environment: ``create_app`` and the command line
call :meth:`Settings.from_env` and pass the result down.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A TOKENWHEEL_* variable has a value we cannot use; the message names it."""


def parse_rate_limit(name: str, text: str) -> str:
    """A flask-limiter rate such as ``6000/minute`` or ``10 per second; 300 per hour``,
    checked now so a typo fails at start-up with the variable's name; ``off`` is ""."""
    from limits import parse_many

    text = text.strip()
    if text.lower() in {"off", "0", "none"}:
        return ""
    try:
        parse_many(text)
    except ValueError:
        raise SettingsError(
            f"{name}={text!r}: expected a rate such as 6000/minute or 20 per second, or off"
        ) from None
    return text


def parse_duration(name: str, text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"15m"``, ``"1h"`` or ``"30d"``."""
    match = _DURATION.match(text)
    if not match:
        raise SettingsError(f"{name}={text!r}: expected a duration such as 3600, 15m, 1h or 30d")
    return float(match.group(1)) * _UNITS[match.group(2)]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(name: str, text: str) -> int:
    """Bytes from ``"2500000000"``, ``"512MB"``, ``"2.5G"``, ``"2GiB"``."""
    match = _SIZE.match(text)
    if not match:
        raise SettingsError(f"{name}={text!r}: expected a size such as 512MB or 2.5GB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


_MODEL_KEYS = {
    "id",
    "name",
    "description",
    "parameters",
    "source",
    "hub_repo",
    "local_path",
    "gguf_file",
    "max_context",
}


def parse_extra_models(text: str) -> tuple[dict[str, object], ...]:
    """``TOKENWHEEL_EXTRA_MODELS``: a JSON list of models to add to the catalog, e.g.
    ``[{"id": "tiny", "source": "local", "local_path": "/models/tiny"}]`` or
    ``[{"id": "pythia-70m", "source": "hub", "hub_repo": "EleutherAI/pythia-70m"}]``."""
    name = "TOKENWHEEL_EXTRA_MODELS"
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(items, list):
        raise SettingsError(f"{name}: expected a JSON list of objects")
    # the catalog is plain data (importing it loads no model library)
    from tokenwheel.inference.catalog import CATALOG

    taken = {spec.id for spec in CATALOG}
    models = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise SettingsError(f"{name}: every entry needs a string 'id'")
        unknown = set(item) - _MODEL_KEYS
        if unknown:
            raise SettingsError(f"{name}: unknown keys {sorted(unknown)} in {item['id']!r}")
        source = item.get("source")
        if source == "hub" and not item.get("hub_repo"):
            raise SettingsError(f"{name}: hub model {item['id']!r} needs 'hub_repo'")
        if source == "local" and not item.get("local_path"):
            raise SettingsError(f"{name}: local model {item['id']!r} needs 'local_path'")
        if source not in ("hub", "local"):
            raise SettingsError(f"{name}: 'source' of {item['id']!r} must be 'hub' or 'local'")
        if item["id"] in taken:
            raise SettingsError(
                f"{name}: the id {item['id']!r} is already taken (by the catalog or an "
                "earlier entry); give the model its own id"
            )
        taken.add(item["id"])
        models.append(dict(item))
    return tuple(models)


def _int(name: str, text: str, minimum: int, maximum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value}: must be between {minimum} and {maximum}")
    return value


def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}={text!r}: expected true or false")


@dataclass(frozen=True)
class Settings:
    """Everything an operator can set. Defaults suit one laptop in one classroom."""

    instance_path: Path = field(default_factory=lambda: Path("instance").resolve())
    database_url: str = ""
    default_model: str = "gpt2"
    session_ttl: float = 3600.0
    retention: float = 30 * 86400.0
    purge_interval: float = 300.0
    scheduler_enabled: bool = True
    offline: bool = False
    hub_timeout: float = 3.0
    torch_threads: int = 0
    model_cache_dir: Path | None = None
    max_prompt_chars: int = 4000
    max_prompt_tokens: int = 512
    max_generated_tokens: int = 512
    max_context: int | None = None
    dtype: str = "float32"
    preload: tuple[str, ...] = ()
    model_memory_budget: int | None = None
    extra_models: tuple[dict[str, object], ...] = ()
    engine: str = "fast"
    # "process": forward passes in a child process of each server process (no GIL shared
    # with the request threads); "thread": in the server's own process
    inference: str = "process"
    kv_cache_bytes: int = 1 << 30
    logits_cache_bytes: int = 128 << 20
    max_batch: int = 32
    model_queue: int = 256
    log_level: str = "INFO"
    # None: the teacher API answers 403. Never printed (repr=False).
    teacher_token: str | None = field(default=None, repr=False)
    # Protection (docs/operations.md). Per client = per remote address: a classroom
    # behind one NAT address is one client, so the defaults leave room for 40 students.
    max_body_bytes: int = 64 * 1024
    rate_limit: str = "6000/minute"
    sessions_per_hour: int = 600
    # wheels below a threshold of 0.1% list up to the whole vocabulary (Gemma 3 at 0: 56 MB,
    # 2 s of the server's time); per client address, like the other limits
    low_threshold_rate_limit: str = "10/minute"
    redis_url: str | None = None
    redis_prefix: str = "tokenwheel"
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    idempotency_window: float = 86400.0

    def __post_init__(self) -> None:
        if not self.database_url:
            url = f"sqlite:///{self.instance_path / 'tokenwheel.sqlite3'}"
            object.__setattr__(self, "database_url", url)
        if self.model_cache_dir is None:
            object.__setattr__(self, "model_cache_dir", self.instance_path / "model-cache")

    @property
    def cache_dir(self) -> Path:
        assert self.model_cache_dir is not None
        return self.model_cache_dir

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``TOKENWHEEL_*`` variables; unknown values fail with the variable's name."""
        env = os.environ if env is None else env

        def get(key: str) -> str | None:
            value = env.get(f"TOKENWHEEL_{key}")
            return value if value not in (None, "") else None

        kwargs: dict[str, object] = {}
        if (value := get("INSTANCE_PATH")) is not None:
            kwargs["instance_path"] = Path(value).resolve()
        if (value := get("DATABASE_URL")) is not None:
            kwargs["database_url"] = value
        if (value := get("DEFAULT_MODEL")) is not None:
            kwargs["default_model"] = value
        for key, attr in (
            ("SESSION_TTL", "session_ttl"),
            ("RETENTION", "retention"),
            ("PURGE_INTERVAL", "purge_interval"),
            ("HUB_TIMEOUT", "hub_timeout"),
            ("IDEMPOTENCY_WINDOW", "idempotency_window"),
        ):
            if (value := get(key)) is not None:
                kwargs[attr] = parse_duration(f"TOKENWHEEL_{key}", value)
        if kwargs.get("session_ttl") == 0:
            raise SettingsError(
                "TOKENWHEEL_SESSION_TTL=0: every session would expire at once; use e.g. 1h"
            )
        if (value := get("SCHEDULER")) is not None:
            kwargs["scheduler_enabled"] = _bool("TOKENWHEEL_SCHEDULER", value)
        offline = get("OFFLINE") or env.get("HF_HUB_OFFLINE")
        if offline is not None:
            kwargs["offline"] = _bool("TOKENWHEEL_OFFLINE", offline)
        if (value := get("TORCH_THREADS")) is not None:
            kwargs["torch_threads"] = _int("TOKENWHEEL_TORCH_THREADS", value, 0, 256)
        if (value := get("MODEL_CACHE_DIR")) is not None:
            kwargs["model_cache_dir"] = Path(value).resolve()
        for key, attr, lower, upper in (
            ("MAX_PROMPT_CHARS", "max_prompt_chars", 1, 1_000_000),
            ("MAX_PROMPT_TOKENS", "max_prompt_tokens", 1, 100_000),
            ("MAX_GENERATED_TOKENS", "max_generated_tokens", 1, 100_000),
            ("MAX_BODY_BYTES", "max_body_bytes", 1024, 64 << 20),
            ("SESSIONS_PER_HOUR", "sessions_per_hour", 0, 10_000_000),
            ("TRUSTED_PROXIES", "trusted_proxies", 0, 10),
        ):
            if (value := get(key)) is not None:
                kwargs[attr] = _int(f"TOKENWHEEL_{key}", value, lower, upper)
        if (value := get("MAX_CONTEXT")) is not None:
            kwargs["max_context"] = _int("TOKENWHEEL_MAX_CONTEXT", value, 2, 1_000_000)
        if (value := get("DTYPE")) is not None:
            if value not in ("float32", "bfloat16"):
                raise SettingsError(f"TOKENWHEEL_DTYPE={value!r}: expected float32 or bfloat16")
            kwargs["dtype"] = value
        if (value := get("PRELOAD")) is not None:
            kwargs["preload"] = tuple(m.strip() for m in value.split(",") if m.strip())
        if (value := get("MODEL_MEMORY_BUDGET")) is not None:
            kwargs["model_memory_budget"] = parse_bytes("TOKENWHEEL_MODEL_MEMORY_BUDGET", value)
        if (value := get("ENGINE")) is not None:
            if value not in ("fast", "naive"):
                raise SettingsError(f"TOKENWHEEL_ENGINE={value!r}: expected fast or naive")
            kwargs["engine"] = value
        if (value := get("INFERENCE")) is not None:
            if value not in ("process", "thread"):
                raise SettingsError(f"TOKENWHEEL_INFERENCE={value!r}: expected process or thread")
            kwargs["inference"] = value
        for key, attr in (("KV_CACHE", "kv_cache_bytes"), ("LOGITS_CACHE", "logits_cache_bytes")):
            if (value := get(key)) is not None:
                kwargs[attr] = parse_bytes(f"TOKENWHEEL_{key}", value)
        if (value := get("MAX_BATCH")) is not None:
            kwargs["max_batch"] = _int("TOKENWHEEL_MAX_BATCH", value, 1, 256)
        if (value := get("MODEL_QUEUE")) is not None:
            kwargs["model_queue"] = _int("TOKENWHEEL_MODEL_QUEUE", value, 1, 100_000)
        if (value := get("EXTRA_MODELS")) is not None:
            kwargs["extra_models"] = parse_extra_models(value)
        if (value := get("RATE_LIMIT")) is not None:
            kwargs["rate_limit"] = parse_rate_limit("TOKENWHEEL_RATE_LIMIT", value)
        if (value := get("LOW_THRESHOLD_RATE_LIMIT")) is not None:
            kwargs["low_threshold_rate_limit"] = parse_rate_limit(
                "TOKENWHEEL_LOW_THRESHOLD_RATE_LIMIT", value
            )
        if (value := get("REDIS_URL")) is not None:
            if not value.startswith(("redis://", "rediss://", "redis+unix://")):
                raise SettingsError(
                    f"TOKENWHEEL_REDIS_URL={value!r}: expected redis://host:port/db, "
                    "rediss://… (TLS) or redis+unix:///path/to/redis.sock"
                )
            kwargs["redis_url"] = value
        if (value := get("REDIS_PREFIX")) is not None:
            kwargs["redis_prefix"] = value
        if (value := get("CORS_ORIGINS")) is not None:
            origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
            for origin in origins:
                if origin != "*" and not origin.startswith(("http://", "https://")):
                    raise SettingsError(
                        f"TOKENWHEEL_CORS_ORIGINS: {origin!r} is not an origin such as "
                        "https://wheel.example.org"
                    )
            kwargs["cors_origins"] = origins
        if (value := get("LOG_LEVEL")) is not None:
            kwargs["log_level"] = value.upper()
        if (value := get("TEACHER_TOKEN")) is not None:
            kwargs["teacher_token"] = value
        return cls(**kwargs)  # type: ignore[arg-type]

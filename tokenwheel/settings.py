"""Typed settings, parsed once from ``TOKENWHEEL_*`` environment variables.

Declared with pydantic-settings instead of a 100-line if-chain: each field says in one
place which variable it is read from (``TOKENWHEEL_`` + its name unless it names
another), how the text is parsed (the annotated types below) and what is refused, and
every refusal is a :class:`SettingsError` naming the variable, never a pydantic
``ValidationError``. Only :meth:`Settings.from_env` reads the environment (the mapping
it is given, through pydantic-settings' environment source); ``Settings(...)`` with
keyword arguments reads nothing, parses text as if it came from the environment and
takes values of the field's own type as given, checking only bounds and choices.
Nothing else in the package reads the environment either.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tokenwheel.inference.catalog import default_quantized_models
from tokenwheel.inference.types import DTYPE_NAMES

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


_MODEL_KEYS = {"id", "name", "description", "parameters", "source", "hub_repo", "local_path"}
_MODEL_KEYS |= {"gguf_file", "max_context"}


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


def _int(name: str, value: str | int, minimum: int, maximum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r}: expected a whole number") from None
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


def _origins(name: str, text: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise SettingsError(
                f"{name}: {origin!r} is not an origin such as https://wheel.example.org"
            )
    return origins


def _redis_url(name: str, text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "redis+unix://")):
        raise SettingsError(
            f"{name}={text!r}: expected redis://host:port/db, "
            "rediss://… (TLS) or redis+unix:///path/to/redis.sock"
        )
    return text


def _variable(field: str) -> str:
    """The variable a field is read from: its (first) validation alias."""
    alias = Settings.model_fields[field].validation_alias
    return str(alias.choices[0] if isinstance(alias, AliasChoices) else alias)


def _text(parse: Callable[[str, Any], Any], kinds: tuple[type, ...] = (str,)) -> BeforeValidator:
    """Parse text (or another of ``kinds``) with ``parse(variable, value)``; values of
    other types go on to pydantic as given."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        return parse(_variable(str(info.field_name)), value) if isinstance(value, kinds) else value

    return BeforeValidator(validate)


def _between(minimum: int, maximum: int) -> BeforeValidator:
    """A whole number, given as text or not, within bounds."""
    return _text(lambda name, value: _int(name, value, minimum, maximum), (str, int))


def _one_of(choices: tuple[str, ...]) -> BeforeValidator:
    def check(name: str, text: str) -> str:
        if text not in choices:
            raise SettingsError(f"{name}={text!r}: expected {' or '.join(choices)}")
        return text

    return _text(check)


# the dtype names have one home, beside the CPU checks that decide whether each can run
Dtype = Annotated[str, _one_of(DTYPE_NAMES)]
Engine = Literal["fast", "naive"]
Inference = Literal["process", "thread"]
_Duration = Annotated[float, _text(parse_duration)]
_Size = Annotated[int, _text(parse_bytes)]
_Flag = Annotated[bool, _text(_bool)]
_Folder = Annotated[Path, _text(lambda _, text: Path(text).resolve())]
_RateLimit = Annotated[str, _text(lambda name, text: text and parse_rate_limit(name, text))]
_Names = Annotated[
    tuple[str, ...], _text(lambda _, text: tuple(m.strip() for m in text.split(",") if m.strip()))
]


class Settings(BaseSettings):
    """Everything an operator can set. Defaults suit one laptop in one classroom."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        alias_generator=AliasGenerator(validation_alias=lambda name: f"TOKENWHEEL_{name.upper()}"),
        populate_by_name=True,  # Settings(offline=True): by field name as well as variable
        validate_default=False,  # the defaults below are already parsed
    )

    instance_path: _Folder = Field(default_factory=lambda: Path("instance").resolve())
    # "": sqlite in the instance folder
    database_url: str = Field(default="", validate_default=True)
    default_model: str = "gpt2"
    session_ttl: _Duration = 3600.0
    retention: _Duration = 30 * 86400.0
    purge_interval: _Duration = 300.0
    scheduler_enabled: _Flag = Field(default=True, validation_alias="TOKENWHEEL_SCHEDULER")
    offline: _Flag = Field(
        default=False, validation_alias=AliasChoices("TOKENWHEEL_OFFLINE", "HF_HUB_OFFLINE")
    )
    hub_timeout: _Duration = 3.0
    torch_threads: Annotated[int, _between(0, 256)] = 0
    # None: model-cache in the instance folder
    model_cache_dir: _Folder | None = Field(default=None, validate_default=True)
    max_prompt_chars: Annotated[int, _between(1, 1_000_000)] = 4000
    max_prompt_tokens: Annotated[int, _between(1, 100_000)] = 512
    max_generated_tokens: Annotated[int, _between(1, 100_000)] = 512
    max_context: Annotated[int | None, _between(2, 1_000_000)] = None
    dtype: Dtype = "float32"
    preload: _Names = ()
    model_memory_budget: _Size | None = None
    extra_models: Annotated[
        tuple[dict[str, object], ...], _text(lambda _, text: parse_extra_models(text))
    ] = ()
    engine: Engine = "fast"
    # llama.cpp on the GGUF file as shipped, per model; default: models within 1e-3 of float32
    quantized_models: _Names = Field(default_factory=default_quantized_models)
    # "process": forward passes in a child process of each server process (no GIL shared
    # with the request threads); "thread": in the server's own process
    inference: Inference = "process"
    kv_cache_bytes: _Size = Field(default=1 << 30, validation_alias="TOKENWHEEL_KV_CACHE")
    logits_cache_bytes: _Size = Field(default=128 << 20, validation_alias="TOKENWHEEL_LOGITS_CACHE")
    max_batch: Annotated[int, _between(1, 256)] = 32
    model_queue: Annotated[int, _between(1, 100_000)] = 256
    # after an append, a spin, an undo or a new prompt, compute the next wheel at once at
    # low priority (docs/performance.md "Prefetch"); off: only when it is asked for
    prefetch: _Flag = True
    log_level: Annotated[str, _text(lambda _, text: text.upper())] = "INFO"
    # None: the teacher API answers 403. Never printed (repr=False).
    teacher_token: str | None = Field(default=None, repr=False)
    # Protection (docs/operations.md). Per client = per remote address: a classroom
    # behind one NAT address is one client, so the defaults leave room for 40 students.
    max_body_bytes: Annotated[int, _between(1024, 64 << 20)] = 64 * 1024
    rate_limit: _RateLimit = "6000/minute"
    sessions_per_hour: Annotated[int, _between(0, 10_000_000)] = 600
    # wheels below a threshold of 0.1% list up to the whole vocabulary (Gemma 3 at 0: 56 MB,
    # 2 s of the server's time); per client address, like the other limits
    low_threshold_rate_limit: _RateLimit = "10/minute"
    redis_url: Annotated[str | None, _text(_redis_url)] = None
    redis_prefix: str = "tokenwheel"
    trusted_proxies: Annotated[int, _between(0, 10)] = 0
    cors_origins: Annotated[tuple[str, ...], _text(_origins)] = ()
    idempotency_window: _Duration = 86400.0
    # Live class streams (docs/operations.md "Live view"): each open stream holds one of
    # the worker's threads, so they are capped per process and end by themselves.
    live_max_streams: Annotated[int, _between(1, 10_000)] = 8
    live_stream_duration: _Duration = 300.0

    if not TYPE_CHECKING:  # type checkers keep the keyword arguments pydantic declares

        def __init__(self, **values: Any) -> None:
            with _settings_errors():
                super().__init__(**values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}; use with_overrides")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    @field_validator("session_ttl")
    @classmethod
    def _session_ttl(cls, value: float) -> float:
        if value == 0:
            raise SettingsError(
                "TOKENWHEEL_SESSION_TTL=0: every session would expire at once; use e.g. 1h"
            )
        return value

    @field_validator("live_stream_duration")
    @classmethod
    def _live_stream_duration(cls, value: float) -> float:
        if not 1 <= value <= 3600:
            raise SettingsError(
                f"TOKENWHEEL_LIVE_STREAM_DURATION={value:g}: must be between 1s and 1h"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str, info: ValidationInfo) -> str:
        folder = info.data.get("instance_path")
        if value or folder is None:
            return value
        return f"sqlite:///{folder / 'tokenwheel.sqlite3'}"

    @field_validator("model_cache_dir")
    @classmethod
    def _model_cache_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        folder = info.data.get("instance_path")
        return folder / "model-cache" if value is None and folder is not None else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # keyword arguments only: from_env reads the environment

    @property
    def cache_dir(self) -> Path:
        assert self.model_cache_dir is not None
        return self.model_cache_dir

    def with_overrides(self, **changes: object) -> Settings:
        values: dict[str, Any] = {**dict(self), **changes}
        return type(self)(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``TOKENWHEEL_*`` variables; unknown values fail with the variable's name."""
        values = _Environment(cls, os.environ if env is None else env)()
        return cls(**values)


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ
    (it takes no mapping: pydantic/pydantic-settings#653). Empty variables count as unset;
    values stay text for the fields' validators, which name the variable when they fail."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            key: value
            for key, value in self._env.items()
            if value and (key.startswith("TOKENWHEEL_") or key == "HF_HUB_OFFLINE")
        }

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        return value  # no JSON decoding of tuple fields: PRELOAD is "a,b", not '["a","b"]'


@contextmanager
def _settings_errors() -> Iterator[None]:
    """Turn pydantic's ValidationError into SettingsError messages naming the variable."""
    try:
        yield
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            name = _variable(key) if key in Settings.model_fields else key
            cause = error.get("ctx", {}).get("error")
            if error["type"] == "extra_forbidden":
                raise TypeError(f"Settings got an unexpected keyword argument {key!r}") from None
            if isinstance(cause, SettingsError):
                messages.append(str(cause))
            elif error["type"] == "literal_error":
                expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
                messages.append(f"{name}={error['input']!r}: expected {expected}")
            else:
                messages.append(f"{name}={error['input']!r}: {error['msg']}")
        raise SettingsError("; ".join(messages)) from None

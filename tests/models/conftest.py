"""A GPT-2-architecture model built locally (random weights, SmolLM2's tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import BUNDLED
from tokenwheel.inference.catalog import ModelSpec
from tokenwheel.inference.registry import ModelRegistry

TINY = "gpt2-tiny"


@pytest.fixture(scope="session")
def tiny_gpt2_folder(registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-2 code paths (Conv1D layers, learned positions up to 1024, no BOS) without
    the Hub: a 2-layer GPT-2 with random weights and the bundled model's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("gpt2-tiny")
    tokenizer = registry.get(BUNDLED).tokenizer
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_spec(folder: Path, model_id: str = TINY) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        name="Tiny GPT-2",
        description="random weights",
        parameters="7M",
        source="local",
        local_path=str(folder),
    )


# the API fixtures, shared with tests/api
from tests.api.conftest import app, client, student  # noqa: E402, F401

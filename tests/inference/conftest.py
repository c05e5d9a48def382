"""The inference tier: the torch code of ``tokenwheel/inference/`` on small inputs, with
no model loaded (torch is imported; weights are not)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.inference.fake_weights import RegistryOnFakeWeights


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """These tensors are small: a second intra-op thread gains nothing, and on a busy
    2-core machine torch's spinning thread pool made one test 10x slower (17 s, not 1.7)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_weights() -> Iterator[RegistryOnFakeWeights]:
    registry = RegistryOnFakeWeights()
    yield registry
    registry.shutdown()

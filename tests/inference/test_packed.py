"""Linear layers on packed weights (inference/packed.py): linear's numbers in any shape,
the plain copy freed unless another module shares it, float32 only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tokenwheel.bench.limits import weight_bytes
from tokenwheel.inference.model import ModelFacts
from tokenwheel.inference.packed import pack_linears, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="PyTorch built without oneDNN")


class Tiny(nn.Module):
    """An embedding, two layers and an output layer tied to the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.up = nn.Linear(16, 24)
        self.down = nn.Linear(24, 16, bias=False)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight
        self.config = SimpleNamespace(max_position_embeddings=64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.down(torch.relu(self.up(self.embed(ids)))))

    def get_output_embeddings(self) -> nn.Linear:
        return self.head


def twins() -> tuple[Tiny, Tiny]:
    torch.manual_seed(7)
    plain = Tiny()
    packed = Tiny()
    packed.load_state_dict(plain.state_dict())
    packed.head.weight = packed.embed.weight
    assert pack_linears(packed) == 3
    return plain, packed


@pytest.mark.parametrize("shape", [(1,), (2,), (8,), (33,), (1, 1), (3, 1), (2, 5), (4, 1, 2)])
def test_the_same_numbers_as_linear_in_every_shape(shape: tuple[int, ...]) -> None:
    plain, packed = twins()
    ids = torch.randint(0, 50, shape, generator=torch.Generator().manual_seed(len(shape)))
    with torch.inference_mode():
        expected, got = plain(ids), packed(ids)
    assert got.shape == expected.shape == (*shape, 50)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_plain_weight_is_freed_unless_another_module_shares_it() -> None:
    _, packed = twins()
    assert packed.up.weight is None and packed.down.weight is None
    assert packed.head.weight is packed.embed.weight  # the embedding still looks rows up
    assert all(layer.packed_weight.is_mkldnn for layer in (packed.up, packed.down, packed.head))
    assert packed.up.bias is not None and packed.down.bias is None
    # a step reads the packed copies, the biases, and the embedding only a row at a time
    assert weight_bytes(packed) == (16 * 24 + 24 * 16 + 16 * 50) * 4 + 24 * 4


def test_only_float32_layers_are_packed() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).to(torch.bfloat16))
    assert pack_linears(model) == 1
    assert getattr(model[1], "packed_weight", None) is None and model[1].weight is not None


def test_the_model_s_memory_counts_the_packed_copies() -> None:
    plain, packed = twins()
    before = ModelFacts.of(None, plain)
    after = ModelFacts.of(None, packed)
    assert before.output_rows == after.output_rows == 50
    # plain: the embedding (shared with the head) once, two weights, one bias
    assert before.parameter_bytes == (50 * 16 + 16 * 24 + 24 * 16 + 24) * 4
    # packed: the embedding kept for its lookups, and a packed copy of every layer
    assert after.parameter_bytes == before.parameter_bytes + 50 * 16 * 4

"""The output layer on a few rows (inference/skinny.py) gives linear's numbers in any shape."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tokenwheel.inference.skinny import SKINNY_ROWS, use_skinny_output


class Tiny(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.inner = nn.Linear(96, 96)
        self.head = head

    def get_output_embeddings(self) -> nn.Module:
        return self.head


def pair(bias: bool) -> tuple[nn.Linear, nn.Linear]:
    plain = nn.Linear(96, 40, bias=bias)
    skinny = nn.Linear(96, 40, bias=bias)
    skinny.load_state_dict(plain.state_dict())
    assert use_skinny_output(Tiny(skinny))
    return plain, skinny


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "shape", [(1,), (2,), (3,), (8,), (9,), (30,), (2, 1), (8, 1), (1, 3), (2, 2), (4, 1, 2)]
)
def test_the_same_numbers_as_linear_in_every_shape(bias: bool, shape: tuple[int, ...]) -> None:
    torch.manual_seed(sum(shape))
    plain, skinny = pair(bias)
    x = torch.randn(*shape, 96)
    expected = plain(x)
    got = skinny(x)
    assert got.shape == expected.shape == (*shape, 40)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_the_weight_first_order_serves_exactly_the_few_rows_it_is_faster_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, skinny = pair(bias=True)
    columns: list[int] = []
    mm = torch.mm

    def spy(a: torch.Tensor, b: torch.Tensor) -> Any:
        columns.append(b.shape[1])
        return mm(a, b)

    monkeypatch.setattr(torch, "mm", spy)
    for rows in range(1, 12):
        skinny(torch.randn(rows, 96))
    assert columns == list(SKINNY_ROWS)


def test_only_a_float32_linear_output_layer_changes() -> None:
    tiny = Tiny(nn.Linear(96, 40))
    assert use_skinny_output(tiny)
    assert "forward" in tiny.head.__dict__ and "forward" not in tiny.inner.__dict__
    assert not use_skinny_output(Tiny(nn.Linear(96, 40).to(torch.bfloat16)))
    assert not use_skinny_output(Tiny(nn.Embedding(40, 96)))

"""engine.fp8: which layers FP8 training converts, and the plain-Linear fallback used for evaluation."""

import pytest
import torch
from torch import nn

from engine.fp8 import fp8_disabled, fp8_module_filter
from engine.gpt import GPT, GPTConfig


class Float8Linear(nn.Linear):
    """Stands in for torchao's class on CPU: same weights, an output that is obviously not a plain Linear's."""

    def forward(self, x):
        return super().forward(x) + 1000.0


def test_filter_keeps_lm_head_and_small_matrices_out():
    model = GPT(GPTConfig(sequence_len=32, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    chosen = {name for name, m in model.named_modules() if fp8_module_filter(m, name)}
    assert "lm_head" not in chosen
    assert "transformer.h.1.attn.ve_gate" not in chosen  # [2, 12]: 12 is no multiple of 16
    assert "smear_gate" not in chosen  # [1, 24]
    assert {"transformer.h.0.attn.c_q", "transformer.h.0.mlp.c_fc", "transformer.h.1.mlp.c_proj"} <= chosen
    assert not fp8_module_filter(nn.Conv1d(16, 16, 1), "conv")


def test_fp8_disabled_swaps_in_plain_layers_sharing_weights_and_restores_them():
    model = nn.Sequential(Float8Linear(16, 32), nn.ReLU(), Float8Linear(32, 16, bias=False))
    fp8 = [model[0], model[2]]
    x = torch.randn(3, 16)
    with fp8_disabled(model):
        assert not any(isinstance(m, Float8Linear) for m in model.modules())
        assert model[0].weight is fp8[0].weight and model[2].weight is fp8[1].weight
        torch.testing.assert_close(model(x), nn.functional.linear(torch.relu(nn.functional.linear(
            x, fp8[0].weight, fp8[0].bias)), fp8[1].weight))
    assert [model[0], model[2]] == fp8
    with pytest.raises(KeyError), fp8_disabled(model):
        raise KeyError("evaluation failed")
    assert [model[0], model[2]] == fp8  # restored on the error path too

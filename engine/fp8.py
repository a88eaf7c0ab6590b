"""FP8 training helpers: which Linear layers torchao converts, and a way back to plain layers for evaluation.

FP8 matmuls (torch._scaled_mm) need both dimensions divisible by 16, so small matrices such as the
value-embedding gate [n_kv_head, 12] must stay in bf16, and the lm_head stays out as its logits are the
most precision-sensitive product. Evaluation should not depend on FP8's per-step scaling either:
`fp8_disabled` swaps every FP8 Linear for a plain nn.Linear sharing the same weight for the duration
of a block and puts the FP8 modules back afterwards, also when the block raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

FP8_TILE = 16


def fp8_module_filter(module: nn.Module, name: str) -> bool:
    """True for a Linear layer worth converting: not the lm_head, both dims multiples of 16."""
    if not isinstance(module, nn.Linear) or name.split(".")[-1] == "lm_head":
        return False
    return module.in_features % FP8_TILE == 0 and module.out_features % FP8_TILE == 0


def _is_fp8(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) and "Float8" in type(module).__name__


@contextmanager
def fp8_disabled(model: nn.Module) -> Iterator[None]:
    """Inside the block, plain nn.Linear layers (sharing the weights) replace the FP8 ones; none: a no-op."""
    swapped = []
    for parent in model.modules():
        for attr, child in list(parent.named_children()):
            if _is_fp8(child):
                plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None,
                                  device="meta")
                plain.weight = child.weight  # the same Parameter: no copy, updates are seen
                plain.bias = child.bias
                setattr(parent, attr, plain)
                swapped.append((parent, attr, child))
    try:
        yield
    finally:
        for parent, attr, child in swapped:
            setattr(parent, attr, child)

"""A data source for engine.train's `data_source` hook (engine/data_source.py), for tests: byte-level
"prompt=answer" pairs whose loss is on the answer only, with an exactly resumable loader and a sample hook."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 260  # 256 bytes, then BOS and three specials
BOS = 256


class ToyTokenizer:
    fingerprint = "toy-tokenizer-v1"
    directory = Path("toy")

    def get_vocab_size(self) -> int:
        return VOCAB

    def get_bos_token_id(self) -> int:
        return BOS

    def token_bytes(self) -> torch.Tensor:
        return torch.tensor([1] * 256 + [0] * (VOCAB - 256), dtype=torch.int32)


class ToyLoader:
    def __init__(self, split: str, B: int, T: int, state: dict | None):
        self.split, self.B, self.T = split, B, T
        self.batches = int(state["batches"]) if state else 0

    def __iter__(self):
        return self

    def __next__(self):
        g = torch.Generator().manual_seed(self.batches * 2 + (self.split == "val"))
        a = torch.randint(0, 10, (self.B, 1), generator=g)
        # "a=" then a+1 repeated: the answer half is learnable from the prompt
        x = torch.cat([torch.full((self.B, 1), BOS), 48 + a, torch.full((self.B, 1), 61),
                       (49 + a).repeat(1, self.T - 3)], dim=1)
        y = torch.cat([x[:, 1:], (49 + a)], dim=1)
        y[:, :2] = -1  # the prompt is not learned
        self.batches += 1
        return x, y, {"batches": self.batches, "split": self.split}


class ToySource:
    description = "toy pairs"

    def __init__(self, options: str | None):
        self.tokenizer = ToyTokenizer()
        self.options = options
        self.samples: list[int] = []

    def loader(self, split, B, T, rank, world_size, device, state=None):
        return ToyLoader(split, B, T, state)

    def sample(self, model, step, emit):
        emit("plugin", plugin="toy", kind="samples", step=step, data={"options": self.options})


def make(options, base_dir, seed):
    return ToySource(options)

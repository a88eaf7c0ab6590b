"""The TCT tokenizer as the trainer sees it: vocab size, fingerprint, bytes per token, eval and samples.

The trainer asks its tokenizer for `get_vocab_size()`, `fingerprint` (checkpoints refuse another
tokenizer's ids) and `token_bytes()` (the bits-per-byte weights). TCT tokens are not byte strings, so a
token's "bytes" are what it adds to the minified JSON it decodes to, atom by atom: a string byte 1, END 1
(the closing quote), a known key its name + 3 (quotes and colon), an enum value 2 (its quotes: the text
is the schema's), INT_n its digits, true/false/null their words, containers' open and close 1; ESC and
NUM add nothing themselves and POS tokens are never targets. So TCT's val_bpb reads as bits per byte of
minified JSON; `val_loss` (nats per token) is reported beside it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from engine.tct import tokenizer as tct_tokenizer
from engine.tct.vocab import N_BYTES, N_INT, SPECIALS, VOCAB_SIZE

KIND = "tct"
_SPECIAL_BYTES = {"ESC": 0, "OBJ_START": 1, "OBJ_END": 1, "ARR_START": 1, "ARR_END": 1, "STR_START": 1,
                  "TRUE": 4, "FALSE": 5, "NULL": 4, "NUM": 0}


def _atom_bytes(vocab: Any, atom: int) -> int:
    if atom < N_BYTES:
        return 1
    off = atom - vocab.first_structural
    if off < len(SPECIALS):
        return _SPECIAL_BYTES[SPECIALS[off]]
    if vocab.enum_base <= atom < vocab.int_base:
        return 2
    if vocab.int_base <= atom < vocab.int_base + N_INT:
        return len(str(atom - vocab.int_base))
    if vocab.pos_base <= atom < vocab.key_base:
        return 0
    return len(vocab.property_names[atom - vocab.key_base].encode()) + 3


class TCTTokenizer:
    """What engine.train needs of a tokenizer, for TCT windows."""

    kind = KIND
    directory = None

    def __init__(self) -> None:
        from engine.tct import fingerprint

        self.tok = tct_tokenizer()
        self.fingerprint = fingerprint()

    def get_vocab_size(self) -> int:
        return VOCAB_SIZE

    def get_bos_token_id(self) -> int:
        return self.tok.vocab.position_token(0)

    def token_bytes(self) -> torch.Tensor:
        vocab = self.tok.vocab
        out = torch.zeros(VOCAB_SIZE, dtype=torch.int64)
        for t, atoms in self.tok.expansion.items():
            out[t] = sum(_atom_bytes(vocab, a) for a in atoms)
        return out


@torch.no_grad()
def evaluate_windows(model: torch.nn.Module, batches: Any, steps: int, token_bytes: torch.Tensor,
                     autocast: Any) -> tuple[float, float]:
    """(bits per JSON byte, mean nats per token) over `steps` batches; padding targets (-1) ignored."""
    dev = token_bytes.device
    nats = torch.zeros((), dtype=torch.float64, device=dev)
    nbytes = torch.zeros((), dtype=torch.int64, device=dev)
    ntok = torch.zeros((), dtype=torch.int64, device=dev)
    for _ in range(steps):
        x, y, _state = next(batches)
        with autocast:
            loss = model(x, y, loss_reduction="none").view(-1).double()
        y = y.view(-1)
        valid = y >= 0
        nats += (loss * valid).sum()
        ntok += valid.sum()
        nbytes += torch.where(valid, token_bytes[y.clamp(min=0)], torch.zeros_like(y)).sum()
    if dist.is_initialized():
        for t in (nats, nbytes, ntok):
            dist.all_reduce(t)
    # nats over every token against the bytes they decode to: ESC/NUM carry information but no bytes
    bpb = float("inf") if nbytes.item() == 0 else nats.item() / (math.log(2) * nbytes.item())
    return bpb, (float("nan") if ntok.item() == 0 else nats.item() / ntok.item())


def tct_samples(model: torch.nn.Module, max_tokens: int = 96, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, sampled workflow as JSON) pairs for the trainer's sample events: one constrained sample from
    the document start, greedy-ish (temperature 0.7) so the samples of successive steps are comparable."""
    from engine.tct_sample import sample_workflow

    result = sample_workflow(model, prompt="", max_tokens=max_tokens, temperature=0.7, top_k=50, seed=seed)
    verdict = "valid" if result.valid else f"invalid: {result.errors[0] if result.errors else 'incomplete'}"
    return [("(workflow)", f"{result.json} [{verdict}]")]

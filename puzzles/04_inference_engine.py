"""Puzzle 04 · Inference engine (Engine.generate)

Goal: sample from a GPT the way nanochat's chat does. A KV cache that the model writes each layer's keys
and values into at the current position (so each new token costs one position, not the whole prefix);
prefill once with batch 1, copy the cache to every sample; sample with temperature and top-k; and a
per-row state machine for the python tool: when a row writes <|python_start|> code <|python_end|>, run the
code and force <|output_start|> result <|output_end|> into that row (mask 0) before sampling resumes.
Verified against the engine (engine/engine.py): cached logits equal a full forward, the same samples
for the same seed, and a generation that calls the calculator yields exactly the expected tokens.

    python -m puzzles.04_inference_engine            run your Engine on a small example
    python -m puzzles.04_inference_engine --verify   compare it with the engine, check by check
    python -m puzzles.04_inference_engine --peek     read the engine's code for this puzzle

The model is the engine's GPT (engine/gpt.py); it calls your cache as documented on KVCache.
"""

import sys
from collections.abc import Callable, Iterator

import torch


class KVCache:
    """Keys and values of every position fed so far, per layer, plus the last token's embedding.

    The GPT's forward(idx, kv_cache=cache) calls, for a call feeding T new positions:
      cache.get_pos()                      the number of positions already cached (the absolute start)
      cache.insert(layer, k, v)            k, v: [B, H, T, D] for the new positions; returns ALL keys and
                                           values of that layer so far, [B, H, pos + T, D] each
      cache.prev_embed                     read then set by the model: [B, 1, C] or None at the start
      cache.advance(T)                     once, after the last layer
    """

    def __init__(self, batch_size: int, num_heads: int, seq_len: int, head_dim: int, num_layers: int,
                 dtype: torch.dtype = torch.float32):
        """Room for seq_len positions of num_layers layers; position 0; prev_embed None."""
        raise NotImplementedError("not implemented yet: KVCache.__init__")

    def get_pos(self) -> int:
        raise NotImplementedError("not implemented yet: KVCache.get_pos")

    def insert(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("not implemented yet: KVCache.insert")

    def advance(self, n: int) -> None:
        raise NotImplementedError("not implemented yet: KVCache.advance")

    def expand(self, batch_size: int) -> "KVCache":
        """A new cache whose batch_size rows each hold a copy of this batch-1 cache (positions, prev_embed)."""
        raise NotImplementedError("not implemented yet: KVCache.expand")


def sample_next_token(logits: torch.Tensor, rng: torch.Generator, temperature: float = 1.0,
                      top_k: int | None = None) -> torch.Tensor:
    """[B, V] logits -> [B, 1] token ids. temperature 0: argmax. Else softmax(logits / temperature) sampled
    with torch.multinomial(probs, 1, generator=rng); with top_k, only over the top_k largest logits
    (torch.topk), mapping the choice back to its token id."""
    raise NotImplementedError("not implemented yet: sample_next_token")


class Engine:
    """Samples from `model` (an engine GPT) tokenized by `tokenizer`; `tool(code) -> str` runs python blocks."""

    def __init__(self, model: torch.nn.Module, tokenizer, tool: Callable[[str], str]):
        """Keep the three; look up the special tokens generate needs once (tokenizer.encode_special(name),
        tokenizer.get_bos_token_id())."""
        raise NotImplementedError("not implemented yet: Engine.__init__")

    @torch.inference_mode()
    def generate(self, tokens: list[int], num_samples: int = 1, max_tokens: int = 16, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 42) -> Iterator[tuple[list[int], list[int]]]:
        """Yield (column, masks): one token and one mask per sample, for each generated position.

        - rng = torch.Generator().manual_seed(seed); one sample_next_token call per position, on all rows.
        - Prefill the prompt once with a batch-1 KVCache (room for len(tokens) + max_tokens positions), take
          the last position's logits; with num_samples > 1 expand the cache and repeat the logits.
        - Per row: a finished row yields -1 with mask 0. A row with forced tokens queued yields the next one
          with mask 0 (the sampled token is dropped). Otherwise it yields the sampled token with mask 1 and
          updates its state: <|assistant_end|> or <|bos|> finish the row (that token is still yielded);
          <|python_start|> starts collecting code tokens; <|python_end|> (while collecting) runs
          self.tool(decode(code)) and queues <|output_start|>, encode(result), <|output_end|>.
        - Stop after max_tokens columns or when every row has finished. Otherwise feed the column (a
          finished row feeds <|bos|>) as a [num_samples, 1] batch through the model with the cache.
        """
        raise NotImplementedError("not implemented yet: Engine.generate")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(4))

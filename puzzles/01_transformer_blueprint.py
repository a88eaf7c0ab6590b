"""Puzzle 01 · Transformer blueprint (ModelSetup)

Goal: everything about the model that is decided before any weight exists. From a depth, the config
(width, heads); the rotary position tables, computed in float32 and only then cast to the compute
dtype; the per-layer sliding windows from a pattern such as "SSSL" and the boolean attention masks they
imply; and the name and shape of every parameter. Verified against the engine's model (engine/shapes.py,
engine/gpt.py): configs, cos, sin, windows, masks and parameter shapes must all agree.

    python -m puzzles.01_transformer_blueprint            run your ModelSetup on a small example
    python -m puzzles.01_transformer_blueprint --verify   compare it with the engine, check by check
    python -m puzzles.01_transformer_blueprint --peek     read the engine's code for this puzzle

Fill in the five methods below; each docstring says exactly what it must return.
"""

import sys

import torch

from engine.shapes import GPTConfig  # the dataclass is given (sequence_len, vocab_size, n_layer, n_head, ...)


class ModelSetup:
    @staticmethod
    def config_from_depth(depth: int, aspect_ratio: int = 64, head_dim: int = 128, sequence_len: int = 2048,
                          vocab_size: int = 32768, window_pattern: str = "SSSL") -> GPTConfig:
        """The GPTConfig of a model `depth` layers deep.

        Width: depth * aspect_ratio, rounded UP to a multiple of head_dim. Heads: width // head_dim, with as
        many key/value heads as query heads. Everything else is passed through.
        """
        raise NotImplementedError("not implemented yet: ModelSetup.config_from_depth")

    @staticmethod
    def rotary(seq_len: int, head_dim: int, base: float = 100000, dtype: torch.dtype = torch.float32
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each [1, seq_len, 1, head_dim // 2] of `dtype`.

        Channel pair i rotates at frequency base ** (-2i / head_dim); position t by angle t * frequency.
        Compute the angles in float32 whatever `dtype` is, and cast only the finished tables: bf16 angles
        are off by whole radians at long positions.
        """
        raise NotImplementedError("not implemented yet: ModelSetup.rotary")

    @staticmethod
    def window_sizes(config: GPTConfig) -> list[int]:
        """Per-layer attention window in tokens. The pattern ("SSSL") is tiled over the layers; "L" is
        sequence_len, "S" is a quarter of it rounded UP to a multiple of 128. The last layer is always "L"."""
        raise NotImplementedError("not implemented yet: ModelSetup.window_sizes")

    @staticmethod
    def attention_mask(window: int, q_len: int, k_len: int, q_start: int = 0) -> torch.Tensor:
        """Boolean [q_len, k_len]: True where the query at absolute position q_start + i may see key j:
        causal (j <= position) and at most `window` positions back (position - j <= window)."""
        raise NotImplementedError("not implemented yet: ModelSetup.attention_mask")

    @staticmethod
    def param_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
        """Every parameter's name (as in the state dict) and shape, for a nanochat GPT with this config.

        The vocab is padded up to a multiple of 64 for wte, lm_head and value_embeds. Per block i:
        attn.c_q/c_k/c_v/c_proj, mlp.c_fc/c_proj (4x width), no biases; value embeddings and the
        attention's ve_gate [n_kv_head, 12] only on layers with i % 2 == (n_layer - 1) % 2. Model-level:
        transformer.wte, lm_head, resid_lambdas and x0_lambdas [n_layer], smear_gate [1, 24],
        smear_lambda [1], backout_lambda [1].
        """
        raise NotImplementedError("not implemented yet: ModelSetup.param_shapes")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(1))

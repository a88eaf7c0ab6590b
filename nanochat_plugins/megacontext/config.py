"""The "megacontext" config category: one pydantic model, read by the app (Config screen, prefabs, --set)
and by the engine extension (its settings arrive as this model's fields). No app imports here: the engine
process loads this module."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MegaContextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="train and serve with MegaContext (gist tree + focus allocator)")
    block_size: int = Field(32, ge=4, le=256, description="tokens per gist block (the tree is block_size-ary)")
    levels: int = Field(2, ge=1, le=3, description="gist tree levels above raw tokens (1: gists of blocks; "
                                                   "2: also gists of block_size gists)")
    budget: int = Field(256, ge=64, le=65536, description="working-context budget: positions the model sees "
                                                          "(raw tokens + one per gist)")
    doc_tokens: int = Field(1024, ge=128, le=1 << 20, description="tokens of each long document MegaContext "
                                                                  "trains on (its full history)")
    tail_tokens: int = Field(64, ge=8, description="raw tokens at the end of each document whose next-token "
                                                   "loss MegaContext trains on")
    docs_per_step: int = Field(1, ge=1, le=64, description="long documents per optimizer step (per rank)")
    loss_weight: float = Field(1.0, ge=0, description="weight of the MegaContext loss next to the plain LM loss")
    truncation_weight: float = Field(0.0, ge=0, description="weight of the same window's loss seen truncated (its "
                                                            "newest budget tokens, raw): keeps the model as good "
                                                            "without gists, so MC against truncation is fair")
    distill_weight: float = Field(0.0, ge=0, description="weight of the ΔNLL distillation: the model with one "
                                                         "block as its gist should predict what it predicts "
                                                         "with that block raw")
    bag_weight: float = Field(0.0, ge=0, description="weight of the gists' bag loss: at each gist's position the "
                                                     "model predicts the distribution of the tokens the gist "
                                                     "stands for (in the distillation's student forward)")
    raw_jitter: bool = Field(False, description="train on working contexts with a random number of raw history "
                                                "blocks (0 up to what the budget holds), so the raw tokens after "
                                                "the gists often have only the gists to go on")
    fill: bool = Field(True, description="give the positions the whole blocks leave free (fewer than a block) to "
                                         "the newest tokens before them, raw, so MegaContext uses every position "
                                         "of the budget")
    raw_blocks: int | None = Field(None, ge=0, description="raw history blocks the working context keeps at most "
                                                          "(the rest gists, however much budget is left); empty: "
                                                          "as many as the budget holds. Each checkpoint records the "
                                                          "best count measured on training documents")
    lens_refresh: int = Field(4, ge=1, description="steps (training) or tokens (chat) between LensNet "
                                                   "re-scoring and, in training, its ΔNLL targets")
    expand_threshold: float = Field(0.1, description="expand a gist only when LensNet's score (predicted loss "
                                                     "saved, nats over the tail) is above this")
    collapse_threshold: float = Field(-0.1, description="hysteresis: a gist is swapped in for the lowest-scored raw "
                                                        "block only when it outscores it by expand_threshold − this")
    gist_input: Literal["tokens", "states", "trained_states"] = Field(
        "tokens", description="what GistNet pools: a block's token embeddings, or the model's last-layer states "
                              "over it (read raw, a budget at a time: one more forward per document); "
                              "trained_states: the same states with the gists' gradient flowing back into the "
                              "model that read them, so it learns to write what a gist should carry (one more "
                              "backward too)")
    gist_values: bool = Field(True, description="a gist also carries its block's mean value embeddings (the "
                                                "layers that have them), not its placeholder id's: every gist "
                                                "would otherwise show the model the same values")
    gistnet_dim: int = Field(128, ge=16, le=4096, description="GistNet size: width of its attention pooling")
    gistnet_heads: int = Field(4, ge=1, le=64, description="GistNet attention-pooling heads")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate of GistNet and LensNet")

    @model_validator(mode="after")
    def _shape(self) -> MegaContextConfig:
        if self.gistnet_dim % self.gistnet_heads:
            raise ValueError(f"gistnet_dim={self.gistnet_dim} must be a multiple of gistnet_heads="
                             f"{self.gistnet_heads}")
        if self.tail_tokens + 2 * self.block_size > self.budget:
            raise ValueError(f"budget={self.budget} must hold tail_tokens={self.tail_tokens} plus two blocks")
        if self.doc_tokens < self.tail_tokens + 2 * self.block_size:
            raise ValueError(f"doc_tokens={self.doc_tokens} must be longer than tail_tokens plus two blocks")
        return self

    def states_chunk(self) -> int:
        """make_gists' states_chunk: 0 for token embeddings, else the budget in whole blocks."""
        return self.budget // self.block_size * self.block_size if self.gist_input != "tokens" else 0

    def states_grad(self) -> bool:
        """make_gists' states_grad: whether training backpropagates through the states GistNet pools."""
        return self.gist_input == "trained_states"

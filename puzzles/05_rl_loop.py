"""Puzzle 05 · RL loop (RLTrainer, GRPO as nanochat runs it)

Goal: one on-policy policy-gradient update. Sample K answers to a prompt with the KV-cache engine
(rollouts), score them with the task's reward, turn rewards into advantages (r - mean, or the full
(r - mean) / (std + eps)), and build the token-level loss: every sampled token of every answer weighs the
same, prompt and tool-output tokens weigh nothing, plus an optional KL penalty against a reference model.
Verified against the engine's RL stage (engine/grpo.py, engine/rl.py): rollouts and rewards, advantages,
log-probs, loss values, and the gradients of every parameter on a fixed batch.

    python -m puzzles.05_rl_loop            run your RLTrainer on a small example
    python -m puzzles.05_rl_loop --verify   compare it with the engine, check by check
    python -m puzzles.05_rl_loop --peek     read the engine's code for this puzzle
"""

import sys

import torch


class RLTrainer:
    @staticmethod
    def rollout(engine, tokenizer, conversation: dict, num_samples: int, max_tokens: int, temperature: float,
                top_k: int | None, seed: int) -> tuple[list[list[int]], list[list[int]]]:
        """K answers to a conversation: (seqs, masks), each one list per sample.

        prompt = tokenizer.render_for_completion(conversation). Call engine.generate(prompt, num_samples=K,
        max_tokens=..., temperature=..., top_k=..., seed=...) once; each seq is the prompt followed by that
        sample's generated tokens (skip the -1 a finished row yields), each mask 0 over the prompt followed
        by the generated masks (1 sampled, 0 forced).
        """
        raise NotImplementedError("not implemented yet: RLTrainer.rollout")

    @staticmethod
    def rewards(task, conversation: dict, tokenizer, prompt_len: int, seqs: list[list[int]]) -> list[float]:
        """task.reward(conversation, text) per answer, where text decodes the answer (the tokens after the
        prompt) without its final token when that is <|assistant_end|> or <|bos|>."""
        raise NotImplementedError("not implemented yet: RLTrainer.rewards")

    @staticmethod
    def advantages(rewards: torch.Tensor, normalize_std: bool = False, eps: float = 1e-6) -> torch.Tensor:
        """rewards [P, K] (K answers to each of P prompts) -> r - mean over K; with normalize_std, divided
        by (the population std over K + eps)."""
        raise NotImplementedError("not implemented yet: RLTrainer.advantages")

    @staticmethod
    def batch_tensors(seqs: list[list[int]], masks: list[list[int]], pad: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, targets, target mask), each [B, W-1] int64, W the longest seq: seqs right-padded with
        `pad` (mask 0); inputs = ids[:, :-1], targets = ids[:, 1:] set to -1 where masks[:, 1:] is 0."""
        raise NotImplementedError("not implemented yet: RLTrainer.batch_tensors")

    @staticmethod
    def token_logprobs(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """[B, T] log-probability the model gives each target token (0 where the target is -1). The model's
        forward(inputs) returns logits [B, T, V] (already softcapped): use log_softmax over V."""
        raise NotImplementedError("not implemented yet: RLTrainer.token_logprobs")

    @staticmethod
    def pg_loss(logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor, num_tokens: int,
                ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, kl): loss = -sum(mask * adv[:, None] * logp) / N with N = num_tokens (at least 1); with a
        reference and kl_coef > 0, add kl_coef * kl where kl = sum(mask * k3) / N and, with d = ref_logp - logp,
        k3 = exp(d) - d - 1. kl is returned detached (0 without a reference)."""
        raise NotImplementedError("not implemented yet: RLTrainer.pg_loss")

    @staticmethod
    def policy_loss(model, ref_model, seqs: list[list[int]], masks: list[list[int]], rewards: list[float],
                    pad: int, normalize_std: bool = False, kl_coef: float = 0.0) -> torch.Tensor:
        """The loss of one prompt's K answers, ready for backward(): advantages of [rewards], the batch
        tensors, the model's token log-probs (the reference's under no_grad when ref_model is given),
        pg_loss with N = the number of sampled tokens (sum of masks)."""
        raise NotImplementedError("not implemented yet: RLTrainer.policy_loss")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(5))

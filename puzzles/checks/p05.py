"""Puzzle 05 checks: rollouts and rewards, advantages, batch tensors, log-probs, loss, gradients."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from types import SimpleNamespace

import torch

from puzzles import compare
from puzzles.checks import fixtures
from puzzles.oracle import Oracle

PEEK = {
    "engine": ["engine.rl:RLTrainer.sample", "engine.rl:RLTrainer.rollout", "engine.grpo:advantages",
               "engine.grpo:rollout_tensors", "engine.grpo:kl_k3", "engine.grpo:pg_loss",
               "engine.rl:RLTrainer.train_step"],
    "nanochat": ["nanochat.engine:Engine.generate_batch"],
}
NO_STOCK = "GRPO (stock nanochat's RL loop is scripts/chat_rl.py, outside the package)"


def _task():
    from engine.tasks import Arithmetic

    return Arithmetic(size=8, seed=3)


def _engine(model, tok):
    from engine.calculator import calculator
    from engine.engine import Engine

    return Engine(model, tok, calculator)


def _oracle_rollout(engine, tok, task, idx: int, k: int, max_tokens: int, temperature: float, top_k, seed: int):
    """The engine's RLTrainer.rollout on a bare object holding just what it reads."""
    from engine.rl import RLTrainer

    ns = SimpleNamespace(engine=engine, tokenizer=tok, assistant_end=tok.encode_special("<|assistant_end|>"),
                         python_start=tok.encode_special("<|python_start|>"),
                         cfg=SimpleNamespace(device_batch_size=k, top_k=top_k or 0, max_new_tokens=max_tokens))
    ns.sample = functools.partial(RLTrainer.sample, ns)
    return RLTrainer.rollout(ns, task, idx, k, temperature, lambda chunk: seed)


def _oracle_loss(model, ref, seqs, masks, rewards, pad, normalize_std, kl_coef):
    from engine.grpo import advantages, pg_loss, rollout_tensors

    adv = advantages(torch.tensor([rewards]), normalize_std)[0]
    inputs, targets, tmask = rollout_tensors(seqs, masks, pad)
    logp = -model(inputs, targets, loss_reduction="none").view_as(inputs)
    ref_logp = None
    if ref is not None:
        with torch.no_grad():
            ref_logp = -ref(inputs, targets, loss_reduction="none").view_as(inputs)
    return pg_loss(logp, tmask, adv, sum(sum(m) for m in masks), ref_logp, kl_coef)[0]


def fixed_batch(tok):
    """Four answers of different lengths to one prompt, with forced tool-output tokens in one of them."""
    gen = torch.Generator().manual_seed(11)
    V = tok.get_vocab_size()
    prompt = [tok.get_bos_token_id(), *tok.encode("What is 6*7?")]
    seqs, masks = [], []
    for n, forced in ((9, ()), (5, (2, 3)), (12, (4,)), (3, ())):
        answer = torch.randint(0, V, (n,), generator=gen).tolist()
        seqs.append(prompt + answer)
        masks.append([0] * len(prompt) + [0 if i in forced else 1 for i in range(n)])
    return seqs, masks, [1.0, 0.0, 0.5, 0.0]


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    trainer = impl.RLTrainer
    tok = fixtures.tokenizer()
    pad = tok.encode_special("<|assistant_end|>")

    def rollouts():
        oracle.require_engine(NO_STOCK)
        task = _task()
        model = fixtures.gpt(tok.get_vocab_size(), seed=6, sequence_len=128)
        for idx, k, temperature, top_k, seed in ((0, 3, 1.0, None, 5), (3, 2, 0.7, 10, 9)):
            want = _oracle_rollout(_engine(model, tok), tok, task, idx, k, 16, temperature, top_k, seed)
            seqs, masks = trainer.rollout(_engine(model, tok), tok, task[idx], k, 16, temperature, top_k, seed)
            problem = (compare.sequences(f"rollout {idx}: seqs", [list(s) for s in seqs], want["seqs"])
                       or compare.sequences(f"rollout {idx}: masks", [list(m) for m in masks], want["masks"]))
            if problem:
                return problem
            prompt_len = len(tok.render_for_completion(task[idx]))
            got = trainer.rewards(task, task[idx], tok, prompt_len, want["seqs"])
            problem = compare.sequences(f"rollout {idx}: rewards", [float(r) for r in got], want["rewards"])
            if problem:
                return problem
        # answers that stop, and a right one: the reward must see the text without its stop token
        conv = task[1]
        prompt = tok.render_for_completion(conv)
        right = tok.encode(f"So it is #### {conv['answer']}")
        seqs = [prompt + right + [pad], prompt + right, prompt + tok.encode("#### 0") + [pad], prompt + right + [1]]
        texts = [s[len(prompt):-1] if s[-1] == pad else s[len(prompt):] for s in seqs]
        want = [float(task.reward(conv, tok.decode(t))) for t in texts]
        got = trainer.rewards(task, conv, tok, len(prompt), seqs)
        return compare.sequences("rewards of hand-made answers", [float(r) for r in got], want)

    def advantages():
        oracle.require_engine(NO_STOCK)
        from engine.grpo import advantages as oracle_adv

        rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.2, 0.9, 0.1]])
        for normalize in (False, True):
            problem = compare.tensors(f"advantages(normalize_std={normalize})", trainer.advantages(rewards, normalize),
                                      oracle_adv(rewards, normalize), atol=1e-6)
            if problem:
                return problem
        return None

    def tensors():
        oracle.require_engine(NO_STOCK)
        from engine.grpo import rollout_tensors

        seqs, masks, _ = fixed_batch(tok)
        got = trainer.batch_tensors(seqs, masks, pad)
        for name, g, w in zip(("inputs", "targets", "target mask"), got, rollout_tensors(seqs, masks, pad),
                              strict=True):
            problem = compare.tensors(name, g, w, check_dtype=False)
            if problem:
                return problem
        return None

    def logprobs():
        oracle.require_engine(NO_STOCK)
        from engine.grpo import rollout_tensors

        model = fixtures.gpt(tok.get_vocab_size(), seed=7)
        seqs, masks, _ = fixed_batch(tok)
        inputs, targets, _ = rollout_tensors(seqs, masks, pad)
        with torch.no_grad():
            want = -model(inputs, targets, loss_reduction="none").view_as(inputs)
            got = trainer.token_logprobs(model, inputs, targets)
        return compare.tensors("token log-probs", got, want, atol=1e-5)

    def loss_values():
        oracle.require_engine(NO_STOCK)
        from engine.grpo import pg_loss

        gen = torch.Generator().manual_seed(2)
        logp = -torch.rand(3, 7, generator=gen) * 5
        ref = logp + torch.randn(3, 7, generator=gen) * 0.3
        mask = (torch.rand(3, 7, generator=gen) > 0.3).long()
        adv = torch.tensor([0.5, -0.25, -0.25])
        for ref_logp, kl_coef in ((None, 0.0), (ref, 0.0), (ref, 0.1)):
            got = trainer.pg_loss(logp, mask, adv, int(mask.sum()), ref_logp, kl_coef)
            want = pg_loss(logp, mask, adv, int(mask.sum()), ref_logp, kl_coef)
            label = f"pg_loss (reference {'yes' if ref_logp is not None else 'no'}, kl_coef {kl_coef})"
            problem = (compare.scalars(f"{label}: loss", got[0], float(want[0]), atol=1e-6)
                       or compare.scalars(f"{label}: kl", got[1], float(want[1]), atol=1e-6))
            if problem:
                return problem
        return None

    def gradients():
        oracle.require_engine(NO_STOCK)
        seqs, masks, rewards = fixed_batch(tok)
        for normalize, kl_coef in ((False, 0.0), (True, 0.2)):
            mine, theirs = fixtures.gpt(tok.get_vocab_size(), seed=7), fixtures.gpt(tok.get_vocab_size(), seed=7)
            ref = fixtures.gpt(tok.get_vocab_size(), seed=8) if kl_coef else None
            trainer.policy_loss(mine.train(), ref, seqs, masks, rewards, pad, normalize, kl_coef).backward()
            _oracle_loss(theirs.train(), ref, seqs, masks, rewards, pad, normalize, kl_coef).backward()
            want = dict(theirs.named_parameters())
            for name, p in mine.named_parameters():
                if p.grad is None:
                    return f"{name} got no gradient (normalize_std {normalize}, kl_coef {kl_coef})"
                problem = compare.tensors(f"grad of {name} (normalize_std {normalize}, kl_coef {kl_coef})", p.grad,
                                          want[name].grad, atol=1e-6, rtol=1e-4)
                if problem:
                    return problem
        return None

    yield "rollouts and rewards", rollouts
    yield "advantages (simplified and full)", advantages
    yield "batch tensors (targets masked)", tensors
    yield "token log-probs", logprobs
    yield "policy-gradient loss and KL", loss_values
    yield "gradients of every parameter on a fixed batch", gradients


def example(impl) -> str:
    trainer = impl.RLTrainer
    tok = fixtures.tokenizer()
    task = _task()
    model = fixtures.gpt(tok.get_vocab_size(), seed=6, sequence_len=128)
    conv = task[0]
    seqs, masks = trainer.rollout(_engine(model, tok), tok, conv, 4, 24, 1.0, None, 5)
    prompt_len = len(tok.render_for_completion(conv))
    rewards = trainer.rewards(task, conv, tok, prompt_len, seqs)
    lines = [f"question: {conv['messages'][0]['content']!r}"]
    lines += [f"  answer {i}: {tok.decode(s[prompt_len:])[:70]!r} reward {r}" for i, (s, r) in
              enumerate(zip(seqs, rewards, strict=True))]
    lines.append(f"advantages: {trainer.advantages(torch.tensor([rewards])).tolist()}")
    s, m, r = fixed_batch(tok)
    loss = trainer.policy_loss(model.train(), None, s, m, r, tok.encode_special("<|assistant_end|>"))
    lines.append(f"policy loss on a fixed batch of 4 answers: {loss.item():.6f}")
    return "\n".join(lines)

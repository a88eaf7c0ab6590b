"""Reference solution of puzzle 05 (RLTrainer): written for the tests, not a copy of the engine."""

import torch
import torch.nn.functional as F


class RLTrainer:
    @staticmethod
    def rollout(engine, tokenizer, conversation, num_samples, max_tokens, temperature, top_k, seed):
        prompt = tokenizer.render_for_completion(conversation)
        seqs = [list(prompt) for _ in range(num_samples)]
        masks = [[0] * len(prompt) for _ in range(num_samples)]
        for column, column_masks in engine.generate(prompt, num_samples=num_samples, max_tokens=max_tokens,
                                                    temperature=temperature, top_k=top_k, seed=seed):
            for row, (token, mask) in enumerate(zip(column, column_masks, strict=True)):
                if token != -1:
                    seqs[row].append(token)
                    masks[row].append(mask)
        return seqs, masks

    @staticmethod
    def rewards(task, conversation, tokenizer, prompt_len, seqs):
        stops = {tokenizer.encode_special("<|assistant_end|>"), tokenizer.get_bos_token_id()}
        out = []
        for seq in seqs:
            answer = seq[prompt_len:]
            if answer and answer[-1] in stops:
                answer = answer[:-1]
            out.append(float(task.reward(conversation, tokenizer.decode(answer))))
        return out

    @staticmethod
    def advantages(rewards, normalize_std=False, eps=1e-6):
        centred = rewards - rewards.mean(-1, keepdim=True)
        if normalize_std:
            centred = centred / (rewards.std(-1, keepdim=True, unbiased=False) + eps)
        return centred

    @staticmethod
    def batch_tensors(seqs, masks, pad):
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        m = torch.tensor([mk + [0] * (width - len(mk)) for mk in masks])
        targets = ids[:, 1:].masked_fill(m[:, 1:] == 0, -1)
        return ids[:, :-1], targets, m[:, 1:]

    @staticmethod
    def token_logprobs(model, inputs, targets):
        logits = model(inputs).float()
        logp = F.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return logp * (targets != -1)

    @staticmethod
    def pg_loss(logp, mask, adv, num_tokens, ref_logp=None, kl_coef=0.0):
        m = mask.to(logp.dtype)
        n = max(int(num_tokens), 1)
        loss = -(m * adv[:, None] * logp).sum() / n
        kl = torch.zeros(())
        if ref_logp is not None and kl_coef > 0:
            d = ref_logp - logp
            kl = (m * (d.exp() - d - 1)).sum() / n
            loss = loss + kl_coef * kl
        return loss, kl.detach()

    @staticmethod
    def policy_loss(model, ref_model, seqs, masks, rewards, pad, normalize_std=False, kl_coef=0.0):
        adv = RLTrainer.advantages(torch.tensor([rewards]), normalize_std)[0]
        inputs, targets, tmask = RLTrainer.batch_tensors(seqs, masks, pad)
        logp = RLTrainer.token_logprobs(model, inputs, targets)
        ref_logp = None
        if ref_model is not None:
            with torch.no_grad():
                ref_logp = RLTrainer.token_logprobs(ref_model, inputs, targets)
        return RLTrainer.pg_loss(logp, tmask, adv, sum(map(sum, masks)), ref_logp, kl_coef)[0]

"""Reference solution of puzzle 06 (CoreEvaluator): written for the tests, not a copy of the engine."""

import random

import torch
import torch.nn.functional as F


def _common(seqs, from_end):
    n = 0
    shortest = min(len(s) for s in seqs)
    while n < shortest:
        pos = -1 - n if from_end else n
        if len({s[pos] for s in seqs}) > 1:
            break
        n += 1
    return n


class CoreEvaluator:
    @staticmethod
    def fewshot(data, idx, num_fewshot):
        if num_fewshot <= 0:
            return []
        pool = [i for i in range(len(data)) if i != idx]
        return [data[i] for i in random.Random(1234 + idx).sample(pool, num_fewshot)]

    @staticmethod
    def render_prompts(task_type, item, delimiter, shots):
        if task_type == "multiple_choice":
            head = "".join(f"{s['query']}{delimiter}{s['choices'][s['gold']]}\n\n" for s in shots)
            return [f"{head}{item['query']}{delimiter}{c}" for c in item["choices"]]
        if task_type == "schema":
            head = "".join(f"{s['context_options'][s['gold']]}{delimiter}{s['continuation']}\n\n" for s in shots)
            return [f"{head}{c}{delimiter}{item['continuation']}" for c in item["context_options"]]
        head = "".join(f"{s['context'].strip()}{delimiter}{s['continuation']}\n\n" for s in shots)
        context = item["context"].strip()
        return [(head + context + delimiter).strip(), f"{head}{context}{delimiter}{item['continuation']}"]

    @staticmethod
    def batch_spans(task_type, tokens):
        if task_type == "multiple_choice":
            start = _common(tokens, from_end=False)
            return tokens, [start] * len(tokens), [len(t) for t in tokens]
        if task_type == "schema":
            tail = _common(tokens, from_end=True)
            return tokens, [len(t) - tail for t in tokens], [len(t) for t in tokens]
        return [tokens[1]], [_common(tokens, from_end=False)], [len(tokens[1])]

    @staticmethod
    def is_correct(model, tokenizer, task_type, item, delimiter, shots):
        bos = tokenizer.get_bos_token_id()
        texts = CoreEvaluator.render_prompts(task_type, item, delimiter, shots)
        tokens = [tokenizer.encode(t, prepend=bos) for t in texts]
        seqs, starts, ends = CoreEvaluator.batch_spans(task_type, tokens)
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [bos] * (width - len(s)) for s in seqs])
        logits = model(ids)
        if task_type == "language_modeling":
            s, e = starts[0], ends[0]
            return bool(torch.equal(logits[0, s - 1:e - 1].argmax(-1), ids[0, s:e]))
        means = []
        for row, (s, e) in enumerate(zip(starts, ends, strict=True)):
            means.append(F.cross_entropy(logits[row, s - 1:e - 1].float(), ids[row, s:e]).item())
        return means.index(min(means)) == item["gold"]

    @staticmethod
    def centered(accuracy, baseline):
        return (accuracy - baseline) / (1 - baseline)

    @staticmethod
    def core_score(results):
        return sum(CoreEvaluator.centered(a, b) for a, b in results) / len(results)

"""Reference solution of puzzle 04 (Engine.generate): written for the tests, not a copy of the engine."""

import torch
import torch.nn.functional as F


class KVCache:
    def __init__(self, batch_size, num_heads, seq_len, head_dim, num_layers, dtype=torch.float32):
        self.k = torch.zeros(num_layers, batch_size, num_heads, seq_len, head_dim, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.pos = 0
        self.prev_embed = None

    def get_pos(self):
        return self.pos

    def insert(self, layer, k, v):
        end = self.pos + k.size(2)
        self.k[layer, :, :, self.pos:end] = k
        self.v[layer, :, :, self.pos:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n):
        self.pos += n

    def expand(self, batch_size):
        L, _, H, T, D = self.k.shape
        out = KVCache(batch_size, H, T, D, L, self.k.dtype)
        out.k[:] = self.k
        out.v[:] = self.v
        out.pos = self.pos
        if self.prev_embed is not None:
            out.prev_embed = self.prev_embed.repeat(batch_size, 1, 1)
        return out


def sample_next_token(logits, rng, temperature=1.0, top_k=None):
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    if top_k is not None and top_k < logits.size(-1):
        values, ids = logits.topk(top_k, dim=-1)
        pick = torch.multinomial(F.softmax(values / temperature, dim=-1), 1, generator=rng)
        return ids.gather(-1, pick)
    return torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=rng)


class Engine:
    def __init__(self, model, tokenizer, tool):
        self.model, self.tokenizer, self.tool = model, tokenizer, tool

    @torch.inference_mode()
    def generate(self, tokens, num_samples=1, max_tokens=16, temperature=1.0, top_k=None, seed=42):
        tok, cfg = self.tokenizer, self.model.config
        special = {name: tok.encode_special(f"<|{name}|>") for name in
                   ("bos", "assistant_end", "python_start", "python_end", "output_start", "output_end")}
        rng = torch.Generator().manual_seed(seed)
        cache = KVCache(1, cfg.n_kv_head, len(tokens) + max_tokens, cfg.n_embd // cfg.n_head, cfg.n_layer)
        logits = self.model(torch.tensor([tokens]), kv_cache=cache)[:, -1]
        if num_samples > 1:
            cache = cache.expand(num_samples)
            logits = logits.repeat(num_samples, 1)
        done = [False] * num_samples
        queued = [[] for _ in range(num_samples)]
        code = [None] * num_samples
        for _ in range(max_tokens):
            picks = sample_next_token(logits, rng, temperature, top_k).view(-1).tolist()
            column, masks = [], []
            for r, token in enumerate(picks):
                if done[r]:
                    column.append(-1)
                    masks.append(0)
                    continue
                if queued[r]:
                    column.append(queued[r].pop(0))
                    masks.append(0)
                    continue
                column.append(token)
                masks.append(1)
                if token in (special["assistant_end"], special["bos"]):
                    done[r] = True
                elif token == special["python_start"]:
                    code[r] = []
                elif token == special["python_end"] and code[r] is not None:
                    result = self.tool(tok.decode(code[r]))
                    code[r] = None
                    queued[r] = [special["output_start"], *tok.encode(result), special["output_end"]]
                elif code[r] is not None:
                    code[r].append(token)
            yield column, masks
            if all(done):
                return
            feed = [t if t != -1 else special["bos"] for t in column]
            logits = self.model(torch.tensor(feed).view(-1, 1), kv_cache=cache)[:, -1]

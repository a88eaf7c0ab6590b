"""Inference: sample continuations from a GPT with a KV cache (`KVCache`), running python tool calls inline.

The prompt is prefilled once with batch 1; the cache is then copied to `num_samples` rows and each
step decodes one token per row. Every row runs a small state machine: it stops on <|assistant_end|>,
<|bos|> or a caller's stop token, and when it writes <|python_start|> code <|python_end|> the code is
run by the tool and `<|output_start|> result <|output_end|>` is forced into that row's stream
(mask 0) before sampling resumes. Masks are 1 for sampled tokens, 0 for forced ones.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from engine.common import compute_dtype, cpu_threads
from engine.errors import EngineError
from engine.speculative import DraftPolicy, NgramDrafter

if TYPE_CHECKING:
    from engine.tokenizer import Tokenizer

# What a finished row yields (with mask 0) while other rows are still generating.
PAD_TOKEN = -1


class KVCache:
    """Per-layer keys/values for incremental decoding, plus the previous token's embedding for smear."""

    def __init__(self, batch_size: int, num_heads: int, seq_len: int, head_dim: int, num_layers: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        shape = (num_layers, 2, batch_size, num_heads, seq_len, head_dim)
        self.kv = torch.empty(shape, device=device, dtype=dtype)
        self.pos = 0
        self.prev_embed: torch.Tensor | None = None  # [B, 1, C] normed embedding of the last token seen
        self.block_embeds: torch.Tensor | None = None  # [M, C] embeddings of GPT.decode_block's last block

    @property
    def kv(self) -> torch.Tensor:
        """[layers, 2, B, heads, positions, head_dim]; assigning it (a beam search reordering rows) is fine."""
        return self._kv

    @kv.setter
    def kv(self, value: torch.Tensor) -> None:
        self._kv = value
        # (keys, values) views per layer, made once: indexing kv[layer] costs ops per layer and token
        self.layers = [(value[i, 0], value[i, 1]) for i in range(value.size(0))]

    def get_pos(self) -> int:
        return self.pos

    def insert(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v: [B, H, T, D] for the new positions; returns all keys/values so far."""
        t0, t1 = self.pos, self.pos + k.size(2)
        if t1 > self.kv.size(4):
            raise ValueError(f"KV cache overflow: {t1} positions > capacity {self.kv.size(4)}")
        kc, vc = self.layers[layer]  # narrow() views: a third of the indexing ops per decoded token
        kc.narrow(2, t0, t1 - t0).copy_(k)
        vc.narrow(2, t0, t1 - t0).copy_(v)
        return kc.narrow(2, 0, t1), vc.narrow(2, 0, t1)

    def advance(self, n: int) -> None:
        self.pos += n

    def rewind(self, n: int) -> None:
        """Drop the last n positions of the latest `GPT.decode_block` (drafts that were rejected): their keys and
        values are overwritten by the next write, and the smear input becomes the last kept token's embedding."""
        if n:
            kept = self.block_embeds.size(0) - n
            if kept < 1:
                raise ValueError(f"rewind({n}): the last block fed {self.block_embeds.size(0)} positions")
            self.pos -= n
            self.prev_embed = self.block_embeds[kept - 1].view(1, 1, -1)

    def expand(self, batch_size: int) -> KVCache:
        """A copy with the batch-1 contents repeated, to sample several continuations of one prefill."""
        if self.kv.size(2) != 1:
            raise ValueError("expand() needs a batch-1 cache")
        out = KVCache.__new__(KVCache)
        out.kv = self.kv.expand(-1, -1, batch_size, -1, -1, -1).contiguous()
        out.pos = self.pos
        out.block_embeds = None
        out.prev_embed = None if self.prev_embed is None else self.prev_embed.expand(batch_size, -1, -1).contiguous()
        return out


def sample_next_token(logits: torch.Tensor, rng: torch.Generator, temperature: float = 1.0,
                      top_k: int | None = None) -> torch.Tensor:
    """One token id per row of `logits` [B, V], as a [B, 1] tensor. temperature 0 is argmax."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    if top_k is not None and top_k < logits.size(-1):
        vals, idx = torch.topk(logits, top_k, dim=-1)
        choice = torch.multinomial(F.softmax(vals / temperature, dim=-1), 1, generator=rng)
        return idx.gather(-1, choice)
    return torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=rng)


def repl_script(code: str) -> str:
    """Turn tool code into a script that prints what a Python REPL would echo: when the last
    statement is a bare expression (the calculator case, `2+3*4`), its repr is printed unless None."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the sandbox reports the syntax error to the model
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return code
    last = tree.body.pop()
    echo = ast.parse("if _ is not None:\n    print(repr(_))").body
    tree.body += [ast.Assign(targets=[ast.Name("_", ast.Store())], value=last.value), *echo]
    return ast.unparse(ast.fix_missing_locations(tree))


def run_python(code: str) -> str:
    """The default tool: run the code REPL-style in the sandbox, return what the model should read.
    Trailing newlines are dropped: tool outputs in chat data (`14`) carry none."""
    from engine.execution import execute_code  # lazy: only chats that call the tool need the sandbox

    return execute_code(repl_script(code)).as_tool_output().rstrip("\n")


@dataclass
class _Row:
    forced: deque[int] = field(default_factory=deque)  # tokens to write before sampling resumes
    code: list[int] | None = None  # tokens of the python block being written, None outside one
    done: bool = False


class Engine:
    """Streams samples from `model` (a GPT or anything with its forward/config) tokenized by `tokenizer`.

    `tool(code) -> str` runs a python block; the default runs it in engine.execution's sandbox.
    """

    # the most guessed tokens one speculative block verifies (engine/speculative.py); measured on a 2-core CPU
    draft_tokens = 7
    # CPU threads for a batch-1 decode forward (None: torch's setting). One token, or a block of a few, is a row
    # or a few times each weight: too little work to split, and with OMP_WAIT_POLICY=PASSIVE (engine/__init__.py)
    # a second thread must be woken for every product. On a 2-core CPU one thread decoded 1.28x faster than two
    # (quiet machine), and blocks 1.4-1.9x (loaded machine). Prefill keeps every thread, and so does the
    # vocabulary product inside a decode forward (GPT.head_threads): it streams 32 MB, enough to split.
    decode_threads: int | None = 1

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, tool: Callable[[str], str] | None = None,
                 speculative: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.tool = tool or run_python
        # one greedy sample goes through GPT.decode_block with drafted tokens where the model has it (CPU only:
        # the row-invariance it rests on is checked for CPU BLAS); False keeps one token per forward
        self.speculative = speculative
        self.stats = {"forwards": 0, "tokens": 0}  # the last generation's decode forwards and tokens out
        sp = tokenizer.encode_special
        self.bos = tokenizer.get_bos_token_id()
        self.assistant_end = sp("<|assistant_end|>")
        self.python_start, self.python_end = sp("<|python_start|>"), sp("<|python_end|>")
        self.output_start, self.output_end = sp("<|output_start|>"), sp("<|output_end|>")

    def generate(self, tokens: list[int], num_samples: int = 1, max_tokens: int | None = None,
                 temperature: float = 1.0, top_k: int | None = None, seed: int = 42,
                 stop_tokens: list[int] | None = None) -> Iterator[tuple[list[int], list[int]]]:
        """Yield (token_column, token_masks), one entry per sample, for each generated position.

        A row ends with the stop token that ended it (included); after that it yields PAD_TOKEN with
        mask 0. Generation ends when every row has ended, after `max_tokens` positions, or when the
        context is full. max_tokens None generates until the model's sequence_len is full.
        Arguments are checked here, before the first token, so bad input raises at call time.
        """
        limit = self._check(tokens, num_samples, max_tokens, temperature, top_k)
        steps = self._steps(list(tokens), num_samples, limit, temperature, top_k, seed, set(stop_tokens or ()))
        return ((column, masks) for column, masks, _ in steps)

    def generate_batch(self, tokens: list[int], num_samples: int = 1, max_tokens: int | None = None,
                       temperature: float = 1.0, top_k: int | None = None, seed: int = 42,
                       stop_tokens: list[int] | None = None) -> tuple[list[list[int]], list[list[int]]]:
        """Non-streaming: per sample, the prompt followed by its generated tokens (the stop token
        left out), and the matching masks (0 for the prompt and forced tokens, 1 for sampled)."""
        limit = self._check(tokens, num_samples, max_tokens, temperature, top_k)
        results = [list(tokens) for _ in range(num_samples)]
        masks = [[0] * len(tokens) for _ in range(num_samples)]
        steps = self._steps(list(tokens), num_samples, limit, temperature, top_k, seed, set(stop_tokens or ()))
        for column, column_masks, stopped in steps:
            for i, (token, mask) in enumerate(zip(column, column_masks, strict=True)):
                if token != PAD_TOKEN and not stopped[i]:
                    results[i].append(token)
                    masks[i].append(mask)
        return results, masks

    # ---- internals

    def _check(self, tokens: list[int], num_samples: int, max_tokens: int | None, temperature: float,
               top_k: int | None) -> int:
        """Validate the arguments; return the most tokens (prompt + generated) a row may reach."""
        config = self.model.config
        if not tokens:
            raise EngineError("prompt: empty: start it with <|bos|> (tokenizer.get_bos_token_id())")
        bad = [t for t in tokens if not (isinstance(t, int) and 0 <= t < config.vocab_size)]
        if bad:
            raise EngineError(f"prompt: {bad[:5]} are not token ids in the model's vocab [0, {config.vocab_size}): "
                              f"pass a list of ints encoded by the model's own tokenizer")
        if num_samples < 1:
            raise EngineError(f"num_samples={num_samples}: must be at least 1")
        if temperature < 0:
            raise EngineError(f"temperature={temperature}: must be >= 0 (0 means greedy)")
        if top_k is not None and top_k < 1:
            raise EngineError(f"top_k={top_k}: must be >= 1: pass None for no limit")
        room = self.model.rotary_len  # positions the model can encode, sequence_len times a margin
        if len(tokens) >= room:
            raise EngineError(f"prompt: {len(tokens)} tokens leave no room in the model's context of {room} "
                              f"positions: shorten the prompt")
        if max_tokens is None:
            if len(tokens) >= config.sequence_len:
                raise EngineError(f"prompt: {len(tokens)} tokens already fill sequence_len={config.sequence_len}: "
                                  f"pass max_tokens to generate past it")
            return config.sequence_len
        if max_tokens < 1:
            raise EngineError(f"max_tokens={max_tokens}: must be at least 1")
        return min(len(tokens) + max_tokens, room)

    @torch.inference_mode()  # torch applies it around each step of a generator, not while suspended
    def _steps(self, tokens: list[int], num_samples: int, limit: int, temperature: float, top_k: int | None,
               seed: int, stop_tokens: set[int]) -> Iterator[tuple[list[int], list[int], list[bool]]]:
        """Yield (column, masks, stopped): stopped[i] is True where row i's token is its stop token."""
        model, config = self.model, self.model.config
        param = next(model.parameters())
        device = param.device
        bf16 = device.type == "cuda" and compute_dtype(device) == torch.bfloat16
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
        rng = torch.Generator(device=device).manual_seed(seed)
        stops = {self.assistant_end, self.bos} | stop_tokens

        fast = (self.speculative and num_samples == 1 and temperature == 0.0 and device.type == "cpu"
                and hasattr(model, "decode_block"))
        self.stats = {"forwards": 0, "tokens": 0}
        # the cache holds every fed position; the last sampled token is never fed (a block may pad one more)
        cache = KVCache(1, config.n_kv_head, limit if fast else limit - 1, config.n_embd // config.n_head,
                        config.n_layer, device=device, dtype=torch.bfloat16 if bf16 else param.dtype)
        with autocast():
            logits = model(torch.tensor([tokens], dtype=torch.long, device=device), kv_cache=cache)[:, -1, :]
        if fast:
            yield from self._greedy_blocks(tokens, limit, stops, cache, int(logits[0].argmax()))
            return
        if num_samples > 1:
            cache = cache.expand(num_samples)
            logits = logits.expand(num_samples, -1)
        rows = [_Row() for _ in range(num_samples)]
        length = len(tokens)
        while True:
            sampled = sample_next_token(logits, rng, temperature, top_k)[:, 0].tolist()
            column, masks, stopped = [], [], []
            for row, token in zip(rows, sampled, strict=True):
                if row.done:
                    token, mask, stop = PAD_TOKEN, 0, False
                else:
                    token, mask, stop = self._emit(row, token, stops)
                column.append(token)
                masks.append(mask)
                stopped.append(stop)
            length += 1
            yield column, masks, stopped
            if all(row.done for row in rows) or length >= limit:
                return
            # finished rows still need some id in the batch; their logits are never used
            feed = [token if token != PAD_TOKEN else self.bos for token in column]
            with autocast(), self._decode_threads(num_samples):
                ids = torch.tensor(feed, dtype=torch.long, device=device)[:, None]
                logits = model(ids, kv_cache=cache)[:, -1, :]

    def _greedy_blocks(self, tokens: list[int], limit: int, stops: set[int], cache: KVCache,
                       nxt: int) -> Iterator[tuple[list[int], list[int], list[bool]]]:
        """`_steps` for one greedy row, several tokens per forward where guesses come true (engine/speculative.py).

        A block feeds the last emitted token and guesses of the next ones (the forced tool output where one is
        queued, else prompt-lookup drafts) through GPT.decode_block; every guess that equals the token greedy
        decoding emits there is emitted at once, and the cache is rewound past the first that does not. Where
        the policy offers no guess the step is the plain one-token forward. `nxt` is the prefill's choice."""
        row, length = _Row(), len(tokens)
        drafter, policy = NgramDrafter(tokens), DraftPolicy(self.draft_tokens)
        stats = self.stats
        stats.update(blocks=0, guesses=0, accepted=0)
        device = next(self.model.parameters()).device
        feed: list[int] = []  # the last block: the token fed, then its guesses
        preds: list[int] = []  # the model's choice after each fed position
        kept = 0  # fed positions whose prediction stands: the token, then each guess that came true
        drafted = False  # the block's guesses were drafts (not forced tool output): the policy learns from them
        while True:
            token, mask, stop = self._emit(row, nxt, stops)
            came_true = kept < len(feed) and feed[kept] == token  # then the block's next prediction follows it
            if feed and not came_true:  # the block is settled: drop the positions after the last kept one
                cache.rewind(len(feed) - kept)
                if drafted:
                    policy.update(len(feed) - 1, kept - 1)
                    stats["blocks"] += 1
                    stats["guesses"] += len(feed) - 1
                    stats["accepted"] += kept - 1
                feed = []
            length += 1
            stats["tokens"] += 1
            yield [token], [mask], [stop]
            if row.done or length >= limit:
                return
            drafter.append(token)
            if came_true:
                nxt = preds[kept]
                kept += 1
                continue
            room = limit - length - 1  # a guess is worth feeding only where its own prediction can still be used
            forced = list(row.forced)[:min(room, 2 * self.draft_tokens)]
            guesses = forced or policy.guesses(drafter, room)
            stats["forwards"] += 1
            if not guesses:
                with self._decode_threads(1):
                    logits = self.model(torch.tensor([[token]], dtype=torch.long, device=device), kv_cache=cache)
                nxt = int(logits[0, -1].argmax())
                continue
            feed, drafted = [token, *guesses], not forced
            with self._decode_threads(1):
                preds = self.model.decode_block(feed, cache, capped=False).argmax(-1).tolist()
            nxt, kept = preds[0], 1

    @contextmanager
    def _decode_threads(self, rows: int) -> Iterator[None]:
        """torch's CPU threads set to `decode_threads` for one decode forward of `rows` rows (batch 1 only),
        restored after it: never held across a yield, so the caller's setting is what it sees between tokens.
        The model's vocabulary product (GPT.head_threads) keeps the caller's count."""
        model = self.model
        if rows != 1 or next(model.parameters()).device.type != "cpu":
            yield
            return
        head = getattr(model, "head_threads", None)
        if hasattr(model, "head_threads"):
            model.head_threads = torch.get_num_threads()
        try:
            with cpu_threads(self.decode_threads):
                yield
        finally:
            if hasattr(model, "head_threads"):
                model.head_threads = head

    def _emit(self, row: _Row, sampled: int, stops: set[int]) -> tuple[int, int, bool]:
        """(token, mask, stop) for a live row whose model chose `sampled`: a queued forced token wins."""
        if row.forced:
            return row.forced.popleft(), 0, False
        return sampled, 1, self._observe(row, sampled, stops)

    def _observe(self, row: _Row, token: int, stops: set[int]) -> bool:
        """Advance one row's state machine on a sampled token; True when the token ends the row."""
        if token in stops:
            row.done = True
        elif token == self.python_start:
            row.code = []
        elif row.code is not None and token == self.python_end:
            result = self.tool(self.tokenizer.decode(row.code))
            row.code = None
            row.forced.extend([self.output_start, *self.tokenizer.encode(result), self.output_end])
        elif row.code is not None:
            row.code.append(token)
        return row.done

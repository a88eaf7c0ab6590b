"""Sampling GitHub workflows from a TCT model, constrained by the schema so that every one validates.

Constrained (the default). Each step samples only among the tokens the strict decoder accepts next
(`Tokenizer.legal_tokens`: known keys, enum values, types, patterns, required keys before a close). That
leaves the rules a token-level automaton does not see: a oneOf whose branches need different keys (a job
needs `runs-on` unless it `uses` a reusable workflow; a step needs `uses` or `run`, not both), minItems,
dependencies. So whenever a token closes an object or array, the document so far is validated (jsonschema,
ECMA patterns: `engine.tct.validate`). An error at or inside the closed container first refuses just the
closing token, so the container goes on (most such errors are a key one branch requires: `runs-on`);
after four refusals it sends the sampler back to where that container started, to sample it again (the
token first chosen there is banned, so even greedy decoding makes progress; a container that fails
three times is redone from its parent).
The root closing is the last such check, so a document that completes is valid. When the budget left
comes down to the shortest valid ending (`engine.tct.complete`: its cost from the machine's state, plus
FINISH_MARGIN), completion mode finishes the document without the model: the completer's cheapest atom
each step, refused (next option) when it completes a value that breaks the schema, capped at FINISH_CAP
atoms, past which it starts over from the prompt. So a constrained sample always ends complete and valid
(`max_tokens` may be passed by the few tokens validation adds).

Unconstrained (`constrained=False`): plain sampling over the whole vocabulary; the decoder stops at the
first token it cannot accept or when the document completes. The eval compares the two.

A prompt is a workflow name ("CI for a Rust crate"), or a partial document in YAML or JSON ("name: CI\\n
on: push"): the sample continues that document's root object.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from engine.common import cpu_threads
from engine.errors import EngineError
from engine.tct import tokenizer as tct_tokenizer
from engine.tct.complete import Completer
from engine.tct.machine import _ARR, _OBJ, _ROOT, Machine

MAX_TRIES = 3  # failed samples of one container before its parent is redone
CLOSE_TRIES = 4  # closes of a container refused (it must go on: a missing key) before it is sampled again
FINISH_MARGIN = 8  # tokens kept, beyond the shortest ending, for what validation adds to it (a job's runs-on)
FINISH_CAP = 2048  # completion mode's atoms (backtracked ones included) before it starts over from the prompt


@dataclass
class SampleResult:
    tokens: list[int]  # the document's tokens, prompt included (no position token)
    json: str  # the document as minified JSON (`decode`: an incomplete one is closed)
    valid: bool
    errors: list[str]
    complete: bool  # the document ended by itself within the budget
    constrained: bool
    prompt_tokens: int = 0
    sampled: int = 0  # tokens sampled in all, those undone by backtracking included
    backtracks: int = 0
    seconds: float = 0.0
    mask_seconds: float = 0.0  # legal-token sets and validation: the price of the constraints
    model_seconds: float = 0.0
    full_masks: int = 0  # steps that computed the whole legal set (the model's top choices were not legal)
    finished: int = 0  # tokens added by completion mode (the shortest valid ending, once the budget ran low)
    stopped: bool = False  # the caller's stop event ended it

    @property
    def doc(self) -> Any:
        return json.loads(self.json)

    @property
    def new_tokens(self) -> int:
        return len(self.tokens) - self.prompt_tokens


def prompt_tokens(prompt: str) -> list[int]:
    """Tokens of an open root object to continue: "" → none; a YAML/JSON mapping → its members (kept open);
    any other text → {"name": text}."""
    from engine.tct.yamljson import yaml_to_json

    text = prompt.strip()
    if not text:
        return []
    value: Any = None
    if ":" in text or text.startswith("{"):
        try:
            value = json.loads(yaml_to_json(text))
        except EngineError:
            value = None
    if not isinstance(value, dict):
        value = {"name": text}
    tok = tct_tokenizer()
    atoms = tok.walker.atoms(value)
    if tok.walker.escapes:
        raise EngineError("prompt: does not fit the workflow schema (it would need an escape): give a name or "
                          "a partial workflow that validates so far, e.g. 'name: CI' or 'on: push'")
    return tok.segmenter.encode(atoms[:-1])  # without the root's OBJ_END: the sample goes on inside it


class _Track:
    """Where each open container of the machine started (token index) and its JSON path."""

    def __init__(self) -> None:
        self.open: dict[int, tuple[Any, tuple, int]] = {}  # id(frame) -> (frame, path, start)
        self.closed: dict[tuple, int] = {}  # path -> start of the latest container closed there

    def update(self, m: Machine, index: int) -> list[tuple]:
        """After token `index` was fed: note new containers, return the paths of those it closed."""
        live = {id(f): f for f in m.stack if f.kind in (_OBJ, _ARR)}
        closed = [v for k, v in self.open.items() if k not in live]
        for k, f in live.items():
            if k in self.open:
                continue
            parent = f.parent
            if parent.kind == _ROOT:
                path: tuple = ()
            else:
                base = self.open[id(parent)][1]
                if parent.kind == _OBJ:
                    path = (*base, f.pkey)
                else:
                    pos = next((i for i, x in enumerate(parent.box) if x is f.box), len(parent.box))
                    path = (*base, pos)
            self.open[k] = (f, path, index)
        out = []
        for f, path, start in sorted(closed, key=lambda v: -len(v[1])):  # deepest first
            del self.open[id(f)]
            self.closed[path] = start
            out.append(path)
        return out

    def start_of(self, path: tuple) -> tuple[tuple, int] | None:
        """The longest prefix of `path` with a known start, and that start."""
        open_paths = {p: s for _f, p, s in self.open.values()}
        for n in range(len(path), -1, -1):
            p = path[:n]
            if p in self.closed:
                return p, self.closed[p]
            if p in open_paths:
                return p, open_paths[p]
        return None


def _errors_within(errors: list[Any], path: tuple) -> list[Any]:
    return [e for e in errors if tuple(e.absolute_path)[:len(path)] == path]


def _error_line(e: Any) -> str:
    from jsonschema.exceptions import best_match

    e = best_match([e])
    message = " ".join(e.message.split())
    return f"{e.json_path}: {message[:157] + '...' if len(message) > 160 else message}"


class _Model:
    """The next-token logits of a GPT for a document prefix, fed incrementally through a KV cache (rewound
    when the sampler backtracks). The model sees what it was trained on: a window of the document that
    starts at a multiple of its context size T, behind that start's position token; a document longer than
    T goes on in a fresh window."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.config = model.config
        self.T = int(self.config.sequence_len)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.pos = tct_tokenizer().vocab.position_token
        self.cache: Any = None
        self.fed: list[int] = []

    @torch.inference_mode()
    def logits(self, tokens: list[int]) -> torch.Tensor:
        from engine.engine import KVCache
        from engine.gpt import norm

        start = len(tokens) // self.T * self.T  # windows start where training's did: at multiples of T
        window = [self.pos(start), *tokens[start:]]
        keep = 0
        if self.cache is not None:  # the longest prefix of what the cache holds that is still wanted
            limit = min(len(self.fed), len(window) - 1)  # at least one token to feed: its logits are the answer
            while keep < limit and self.fed[keep] == window[keep]:
                keep += 1
        if keep == 0:
            c = self.config
            self.cache = KVCache(1, c.n_kv_head, self.T, c.n_embd // c.n_head, c.n_layer, self.device, self.dtype)
        elif keep < len(self.fed):  # backtracked: rewind (later positions are overwritten as they are fed)
            self.cache.pos = keep
            last = torch.tensor([[window[keep - 1]]], dtype=torch.long, device=self.device)
            self.cache.prev_embed = norm(self.model.transformer.wte(last))
        ids = torch.tensor([window[keep:]], dtype=torch.long, device=self.device)
        out = self.model(ids, kv_cache=self.cache)[0, -1].float()
        self.fed = window
        return out


def _pick(logits: torch.Tensor, allowed: list[int] | None, temperature: float, top_k: int | None,
          gen: torch.Generator) -> int:
    if allowed is not None:
        idx = torch.tensor(allowed, dtype=torch.long, device=logits.device)
        sub = logits[idx]
    else:
        idx, sub = None, logits
    if temperature <= 0:
        choice = int(torch.argmax(sub))
    else:
        sub = sub / temperature
        if top_k and top_k < sub.numel():
            vals, pos = torch.topk(sub, top_k)
            choice = int(pos[torch.multinomial(torch.softmax(vals, -1).cpu(), 1, generator=gen)])
        else:
            choice = int(torch.multinomial(torch.softmax(sub, -1).cpu(), 1, generator=gen))
    return int(idx[choice]) if idx is not None else choice


def _pick_lazy(logits: torch.Tensor, accepts: Any, temperature: float, top_k: int | None, gen: torch.Generator,
               banned: set[int] | None, max_checks: int = 256) -> int | None:
    """The token `_pick` would choose among the legal ones, found by testing candidates one at a time in the
    order the model ranks (greedy, top-k) or draws them (plain sampling, exact: a draw that is not legal is
    removed and the rest renormalised). None when `max_checks` candidates were not enough: then the caller
    computes the whole legal set."""
    def ok(t: int) -> bool:
        return not (banned and t in banned) and accepts(t)

    if temperature <= 0 or top_k:
        order = torch.argsort(logits, descending=True).tolist()
        found: list[int] = []
        want = 1 if temperature <= 0 else int(top_k)
        for checks, t in enumerate(order):
            if checks >= max_checks:
                return None
            if ok(t):
                found.append(t)
                if len(found) == want:
                    break
        if not found:
            return None
        return found[0] if temperature <= 0 else _pick(logits, found, temperature, None, gen)
    probs = torch.softmax(logits / temperature, -1).cpu()
    for _ in range(max_checks):
        t = int(torch.multinomial(probs, 1, generator=gen))
        if ok(t):
            return t
        probs[t] = 0.0
        if float(probs.sum()) <= 0:
            return None
    return None


def idle_cpus() -> int:
    """The cores the load (1-minute average) leaves idle, at least one: the CPU threads worth decoding with."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, int(cpus - os.getloadavg()[0])))


def sample_workflow(model: torch.nn.Module, prompt: str = "", max_tokens: int = 512, temperature: float = 0.8,
                    top_k: int | None = 50, seed: int = 42, constrained: bool = True,
                    stop: threading.Event | None = None) -> SampleResult:
    """One workflow from `model` (a TCT-trained GPT), continuing `prompt`; see the module docstring."""
    from engine.tct.validate import workflow_errors, workflow_validator

    if max_tokens < 1:
        raise EngineError(f"max_tokens {max_tokens}: must be at least 1")
    tok = tct_tokenizer()
    t0 = time.perf_counter()
    prefix = prompt_tokens(prompt)
    lm = _Model(model)
    gen = torch.Generator().manual_seed(seed)
    # one token at a time: threads beyond the idle cores only wait for each other
    with cpu_threads(idle_cpus() if lm.device.type == "cpu" else None):
        result = _constrained(tok, lm, prefix, max_tokens, temperature, top_k, gen, stop, workflow_validator()) \
            if constrained else _free(tok, lm, prefix, max_tokens, temperature, top_k, gen, stop)
    text = tok.decode(result.tokens)[0]
    result.json = text
    t1 = time.perf_counter()
    result.errors = workflow_errors(json.loads(text))
    result.valid = not result.errors
    result.prompt_tokens = len(prefix)
    if constrained:
        result.mask_seconds += time.perf_counter() - t1
    result.seconds = time.perf_counter() - t0
    return result


def _free(tok: Any, lm: _Model, prefix: list[int], max_tokens: int, temperature: float, top_k: int | None,
          gen: torch.Generator, stop: threading.Event | None) -> SampleResult:
    m = tok.machine_after(prefix, strict=False)
    tokens = list(prefix)
    out = SampleResult(tokens, "", False, [], False, False)
    while len(tokens) - len(prefix) < max_tokens and not m.done:
        if stop is not None and stop.is_set():
            out.stopped = True
            break
        t1 = time.perf_counter()
        logits = lm.logits(tokens)
        out.model_seconds += time.perf_counter() - t1
        t = _pick(logits, None, temperature, top_k, gen)
        out.sampled += 1
        if not tok.advance(m, t):
            break  # the decoder cannot take it: the document ends before it
        tokens.append(t)
    out.complete = m.done
    return out


def _accepts(tok: Any, m: Machine, t: int) -> bool:
    """Whether the strict machine takes every atom of token `t` next (tried on a copy)."""
    return all(map(m.clone(True).step, tok.expansion[t]))


def _replay(tok: Any, tokens: list[int]) -> tuple[Machine, _Track]:
    m = Machine(tok.atoms, build=True, strict=True)
    track = _Track()
    for i, t in enumerate(tokens):
        if not tok._feed(m, t):
            raise EngineError(f"prompt token {i} ({tok.vocab.describe(t)}) is not valid there: give a partial "
                              "workflow that fits the schema")
        track.update(m, i)
    return m, track


@dataclass
class _Budget:
    soft: int
    banned: dict[int, set[int]] = field(default_factory=dict)
    tries: dict[tuple, int] = field(default_factory=dict)


def _constrained(tok: Any, lm: _Model, prefix: list[int], max_tokens: int, temperature: float,
                 top_k: int | None, gen: torch.Generator, stop: threading.Event | None,
                 validator: Any) -> SampleResult:
    tokens = list(prefix)
    m, track = _replay(tok, tokens)
    out = SampleResult(tokens, "", False, [], False, True, prompt_tokens=len(prefix))
    budget = _Budget(soft=len(prefix) + max_tokens)
    completer = _completer(tok)
    max_sampled = 8 * max_tokens + 64
    while not m.done:
        if stop is not None and stop.is_set():
            out.stopped = True
            break
        if len(tokens) >= budget.soft or out.sampled >= max_sampled:
            break
        t1 = time.perf_counter()
        left = budget.soft - len(tokens)
        near = left <= FINISH_MARGIN + 64 and left <= completer.cost(m) + FINISH_MARGIN
        out.mask_seconds += time.perf_counter() - t1
        if near:  # the budget is down to what the shortest valid ending needs: finish now
            break
        banned = budget.banned.get(len(tokens))
        t1 = time.perf_counter()
        logits = lm.logits(tokens)
        out.model_seconds += time.perf_counter() - t1
        t1 = time.perf_counter()
        t = _pick_lazy(logits, partial(_accepts, tok, m), temperature, top_k, gen, banned)
        if t is None:  # the model's top choices are not legal: choose among the whole legal set
            legal = tok.legal_tokens(m.clone(True))
            out.full_masks += 1
            if banned:
                legal = [c for c in legal if c not in banned]
            if legal:
                t = _pick(logits, legal, temperature, top_k, gen)
        out.mask_seconds += time.perf_counter() - t1
        if t is None:  # every way on from here was tried: redo the innermost open container
            if not _backtrack(tok, tokens, track, budget, out, path=None):
                break
            m, track = _replay(tok, tokens)
            continue
        out.sampled += 1
        if not tok._feed(m, t):  # cannot happen for a legal token; rebuild rather than trust a half-step
            budget.banned.setdefault(len(tokens), set()).add(t)
            m, track = _replay(tok, tokens)
            continue
        tokens.append(t)
        t1 = time.perf_counter()
        verdict = _check(m, track, tokens, budget, out, validator, CLOSE_TRIES)
        out.mask_seconds += time.perf_counter() - t1
        if verdict is None:
            break
        if verdict:
            m, track = _replay(tok, tokens)
    if not m.done and not out.stopped:
        t1 = time.perf_counter()
        _finish(tok, completer, tokens, budget, out, validator)
        out.mask_seconds += time.perf_counter() - t1
        m, track = _replay(tok, tokens)
    out.complete = m.done
    return out


def _check(m: Machine, track: _Track, tokens: list[int], budget: _Budget, out: SampleResult, validator: Any,
           close_tries: int) -> bool | None:
    """After token `tokens[-1]` was fed: validate the containers it closed. False: fine (m is current);
    True: tokens were cut back (the caller replays m); None: nothing left to undo."""
    closed = track.update(m, len(tokens) - 1)
    if m.done:
        closed.append(())
    if not closed:
        return False
    doc = json.loads(m.output())
    errors = list(validator.iter_errors(doc))
    bad_path = next((p for p in closed if _errors_within(errors, p)), None)
    if bad_path is None:
        return False
    key = ("close", bad_path)
    if budget.tries.get(key, 0) < close_tries:  # first, refuse just the closing token: add to it instead
        budget.tries[key] = budget.tries.get(key, 0) + 1
        t = tokens.pop()
        for pos in [p for p in budget.banned if p > len(tokens)]:
            del budget.banned[pos]
        budget.banned.setdefault(len(tokens), set()).add(t)
        out.backtracks += 1
        return True
    deepest = max((tuple(e.absolute_path) for e in _errors_within(errors, bad_path)), key=len)
    if not _backtrack(None, tokens, track, budget, out, path=deepest, floor=bad_path):
        return None
    return True


def _finish(tok: Any, completer: Completer, tokens: list[int], budget: _Budget, out: SampleResult,
            validator: Any) -> None:
    """Completion mode: end the document with the shortest continuation the schema state machine allows
    (`Completer.choose`, one atom a step), validated at every close like sampling (a refused close makes
    the completer add the cheapest member instead). Capped: past FINISH_CAP atoms it starts over from the
    prompt, which always completes (tests check that)."""
    for attempt in range(2):
        m, track = _replay(tok, tokens)
        budget.banned = {p: b for p, b in budget.banned.items() if p <= len(tokens)}
        budget.tries = {}
        steps = 0
        while not m.done and steps < FINISH_CAP:
            steps += 1
            t = completer.choose(m, budget.banned.get(len(tokens)))
            if t is None or not tok._feed(m, t):
                if not _backtrack(tok, tokens, track, budget, out, path=None):
                    break
                m, track = _replay(tok, tokens)
                continue
            tokens.append(t)
            out.finished += 1
            if _settled_errors(m, track, len(tokens) - 1, validator):  # refuse that atom: the next option
                budget.banned.setdefault(len(tokens) - 1, set()).add(tokens.pop())
                out.backtracks += 1
                m, track = _replay(tok, tokens)
        if m.done:
            return
        if attempt == 0:  # over the cap: start over from the prompt (its shortest valid ending)
            del tokens[out.prompt_tokens:]
            budget.banned = {}
            out.backtracks += 1


def _settled_errors(m: Machine, track: _Track, index: int, validator: Any) -> bool:
    """Whether the document, after token `index`, breaks the schema in a value that is complete: one that is
    neither an open container nor holds one (those may still get what they lack). Completion mode checks
    after every atom, so a value it completes (an empty object opened and closed by one atom included) is
    refused at once and the completer takes its next option there."""
    track.update(m, index)
    errors = list(validator.iter_errors(json.loads(m.output())))
    if not errors:
        return False
    if m.done:
        return True
    open_paths = [p for _f, p, _s in track.open.values()]
    for e in errors:
        path = tuple(e.absolute_path)
        if not any(q[:len(path)] == path for q in open_paths):
            return True
    return False


def _completer(tok: Any) -> Completer:
    global _COMPLETER
    if _COMPLETER is None or _COMPLETER.a is not tok.atoms:
        _COMPLETER = Completer(tok.atoms)
    return _COMPLETER


_COMPLETER: Completer | None = None


def _backtrack(tok: Any, tokens: list[int], track: _Track, budget: _Budget, out: SampleResult,
               path: tuple | None, floor: tuple = ()) -> bool:
    """Cut `tokens` back to where the container holding the error at `path` started (the innermost open
    container when `path` is None) and ban the token chosen there. False when nothing is left to undo."""
    prompt_len = out.prompt_tokens
    if path is None:
        opens = sorted(((p, s) for _f, p, s in track.open.values()), key=lambda v: -len(v[0]))
        found = opens[0] if opens else None
    else:
        found = track.start_of(path)
        if found is not None and len(found[0]) < len(floor):
            found = (floor, track.closed.get(floor, found[1]))
    if found is None:
        return False
    where, start = found
    while budget.tries.get(where, 0) >= MAX_TRIES and where:  # tried enough here: redo the parent
        parent = track.start_of(where[:-1])
        if parent is None:
            break
        where, start = parent
    budget.tries[where] = budget.tries.get(where, 0) + 1
    start = max(start, prompt_len)
    if start >= len(tokens):
        return False
    budget.banned.setdefault(start, set()).add(tokens[start])
    for pos in [p for p in budget.banned if p > start]:
        del budget.banned[pos]
    del tokens[start:]
    out.backtracks += 1
    return True


def is_tct_checkpoint(path: Any) -> bool:
    """Whether a checkpoint dir (its latest step) or model file was trained on TCT windows."""
    from engine.checkpoint import load_meta
    from engine.inference_load import resolve_checkpoint

    try:
        ckpt_dir, step = resolve_checkpoint(path)
        return load_meta(ckpt_dir, step).get("tokenizer_kind") == "tct"
    except (EngineError, OSError, ValueError):
        return False


def load_workflow_model(path: Any, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode, meta with `step`) of a TCT-trained checkpoint dir (latest step) or model file."""
    from engine.checkpoint import load_meta, load_model_state, meta_file, model_file, weights_mismatch
    from engine.inference_load import build_model, model_config_from_meta, resolve_checkpoint
    from engine.tct.vocab import VOCAB_SIZE

    ckpt_dir, step = resolve_checkpoint(path)
    meta = load_meta(ckpt_dir, step)
    source = meta_file(ckpt_dir, step)
    if meta.get("tokenizer_kind") != "tct":
        raise EngineError(f"{source}: not trained on TCT windows (no tokenizer_kind: tct): pick the checkpoint of "
                          "a tct-* run (nanochat-cli train --prefab tct-cpu)")
    config = model_config_from_meta(meta, source)
    if config.vocab_size != VOCAB_SIZE:
        raise EngineError(f"{source}: vocab_size {config.vocab_size} is not TCT's {VOCAB_SIZE}: pick a tct-* "
                          "run's checkpoint")
    state = load_model_state(ckpt_dir, step, device, meta)
    try:
        model = build_model(config, state, device)
    except RuntimeError as e:
        raise weights_mismatch(model_file(ckpt_dir, step), e) from None
    return model, {**meta, "step": step}


def to_yaml(json_text: str) -> str:
    """A sampled workflow as YAML, keys in order; `on` unquoted (GitHub reads YAML 1.2, where it is a string)."""
    import yaml

    text = yaml.safe_dump(json.loads(json_text), sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=False)
    return "\n".join("on:" + line[len("'on':"):] if line.startswith("'on':") else line
                     for line in text.splitlines()) + "\n"

"""A chat session with a checkpoint (no UI): streamed replies, tool calls surfaced, stats, stop, transcripts.

`ChatSession.stream_reply(text)` yields `Chunk`s as tokens arrive: "text" for what the model writes,
"tool_call" for the python code it writes between <|python_start|> and <|python_end|>, "tool_output"
for what the tool returned (forced into the stream by engine.engine.Engine). Bytes are decoded
incrementally, so a character split across tokens is never shown half. Setting `stop_event` (from any
thread) ends the reply before the next token. In "chat" mode the history is rendered with the
tokenizer's chat template (oldest turns are dropped when the context would overflow); in "continue"
mode every prompt is plain text the model continues.

Transcripts are JSONL (one message per line after a header) plus Markdown, rewritten after each turn.
"""

from __future__ import annotations

import codecs
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.shared import atomic_write
from nanochat_cli.services.registry import REGISTRY

MODES = ("chat", "continue")
SPECIAL_TEXT = {"tool_call": ("<|python_start|>", "<|python_end|>"),
                "tool_output": ("<|output_start|>", "<|output_end|>")}


@dataclass
class Chunk:
    kind: str  # "text" | "tool_call" | "tool_output"
    text: str


@dataclass
class ReplyStats:
    prompt_tokens: int = 0
    tokens: int = 0  # generated: sampled plus tool output forced in; the end token is not counted
    ttft_s: float | None = None  # prompt in -> first generated token out (includes the prefill)
    tokens_per_s: float = 0.0  # decode rate: tokens after the first / time after the first
    seconds: float = 0.0
    finish: str = "stop"  # "stop" (end token) | "length" (max_tokens reached) | "cancelled" (stop_event)
    dropped_turns: int = 0  # oldest user/assistant pairs left out to fit the context
    threads: int = 0  # torch CPU threads the reply ran with
    context: str = ""  # a plugin chat context's status after the reply (e.g. MegaContext's LOD map)


def default_mode(path: str | Path) -> str:
    """The mode a checkpoint opens in: continuation for a base (pretrained) checkpoint, which continues text and
    never learned the chat template; chat for SFT and RL ones. A dir outside the phase layout counts as base."""
    from nanochat_cli.services.checkpoints.entries import PHASE_OF_DIR

    p = Path(path).expanduser()
    ckpt_dir = p.parent if p.suffix == ".pt" else p
    return "continue" if PHASE_OF_DIR.get(ckpt_dir.resolve().parent.name, "base") == "base" else "chat"


def render_segments(segments: list[Chunk]) -> str:
    """A reply's segments as one string, tool calls and outputs marked by their special tokens."""
    return "".join(c.text if c.kind == "text" else SPECIAL_TEXT[c.kind][0] + c.text + SPECIAL_TEXT[c.kind][1]
                   for c in segments)


def _parts(segments: list[Chunk]) -> list[dict[str, str]]:
    """Reply segments -> assistant message parts of the chat template (text, python, python_output)."""
    names = {"text": "text", "tool_call": "python", "tool_output": "python_output"}
    return [{"type": names[c.kind], "text": c.text} for c in segments]


class ChatSession:
    """Multi-turn chat (or text continuation) with a model; one reply at a time."""

    def __init__(self, model: Any, tokenizer: Any, mode: str = "chat", temperature: float = 0.8,
                 top_k: int | None = 50, max_tokens: int = 256, seed: int = 42,
                 tool: Callable[[str], str] | None = None, info: dict[str, Any] | None = None,
                 context: Any = None):
        """`context`: a plugin's chat context (Registry.register_chat_context) that generates instead of the
        plain engine, e.g. over a long document through MegaContext's working context."""
        from engine.engine import Engine

        if mode not in MODES:
            raise EngineError(f"chat mode {mode!r}: unknown: use chat or continue")
        if temperature < 0:
            raise EngineError(f"temperature={temperature}: must be >= 0 (0 means greedy)")
        if top_k is not None and top_k < 1:
            raise EngineError(f"top_k={top_k}: must be >= 1, or none for no limit")
        if max_tokens < 1:
            raise EngineError(f"max_tokens={max_tokens}: must be at least 1")
        self.model, self.tokenizer, self.mode = model, tokenizer, mode
        self.temperature, self.top_k, self.max_tokens, self.seed = temperature, top_k, max_tokens, seed
        self.engine = Engine(model, tokenizer, tool=tool)
        self.context = context
        self.info = dict(info or {})  # checkpoint, step, … (goes into the transcript header)
        self.messages: list[dict[str, Any]] = []  # chat-template messages; assistant content is a parts list
        self.log: list[dict[str, Any]] = []  # transcript: messages with chunks and stats
        self.stop_event = threading.Event()
        self.last_stats: ReplyStats | None = None
        self.last_segments: list[Chunk] = []
        self.started = time.time()
        sp = tokenizer.encode_special
        self._special = {sp("<|python_start|>"): ("open", "tool_call"), sp("<|python_end|>"): ("close", "tool_call"),
                         sp("<|output_start|>"): ("open", "tool_output"),
                         sp("<|output_end|>"): ("close", "tool_output")}
        self._ends = {sp("<|assistant_end|>"), tokenizer.get_bos_token_id()}

    @classmethod
    def from_checkpoint(cls, path: str | Path, step: int | None = None, device: str = "cpu",
                        tokenizer_dir: str | Path | None = None, **kw: Any) -> ChatSession:
        from engine.inference_load import load_model

        model, tok, meta = load_model(path, step, device, tokenizer_dir)
        model_file = Path(path) if str(path).endswith(".pt") else Path(path) / f"model_{meta['step']:06d}.pt"
        info = {"checkpoint": str(model_file), "step": meta["step"], "run": meta.get("run"), "device": str(device)}
        context = None
        for name, factory in REGISTRY.chat_contexts().items():  # the first plugin context that applies
            context = factory(model_file.parent, meta["step"], model, tok, meta)
            if context is not None:
                info["context"] = name
                break
        return cls(model, tok, info=info, context=context, **kw)

    def stop(self) -> None:
        """Ask the reply in progress to end before its next token (safe from any thread)."""
        self.stop_event.set()

    def reset(self) -> None:
        self.messages.clear()
        self.log.clear()

    # ---- prompt

    def _prompt(self, user_text: str) -> tuple[list[int], int]:
        tok = self.tokenizer
        if self.mode == "continue":
            return tok.encode(user_text, prepend=tok.get_bos_token_id()), 0
        if self.context is not None:  # the context fits the whole history into its own budget
            return tok.render_for_completion({"messages": self.messages + [{"role": "user", "content": user_text},
                                                                           {"role": "assistant", "content": ""}]}), 0
        history = self.messages + [{"role": "user", "content": user_text}]
        budget = max(self.model.config.sequence_len - self.max_tokens, self.model.config.sequence_len // 2)
        dropped = 0
        while True:
            ids = tok.render_for_completion({"messages": history + [{"role": "assistant", "content": ""}]})
            if len(ids) <= budget or len(history) <= 1:
                return ids, dropped
            history = history[2:]
            dropped += 1

    # ---- reply

    def stream_reply(self, user_text: str) -> Iterator[Chunk]:
        """Generate the next reply, yielding chunks as they decode; `last_stats` is set when it ends. Torch's CPU
        threads are set for the thread that iterates this (compute.use_inference_threads)."""
        from nanochat_cli.services.compute import use_inference_threads

        self.stop_event.clear()
        threads = use_inference_threads()
        ids, dropped = self._prompt(user_text)
        stats = ReplyStats(prompt_tokens=len(ids), dropped_turns=dropped, finish="length", threads=threads)
        seed = self.seed + sum(1 for m in self.log if m["role"] == "assistant")
        t0 = time.perf_counter()
        if self.context is not None:
            steps = (([t], None) for t in self.context.generate(ids, self.max_tokens, self.temperature, self.top_k,
                                                                 seed))
        else:
            steps = self.engine.generate(ids, num_samples=1, max_tokens=self.max_tokens,
                                         temperature=self.temperature, top_k=self.top_k, seed=seed)
        segments = [Chunk("text", "")]  # one per text run, tool call and tool output, in order
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        t_first = None
        enc = self.tokenizer.enc
        self.log.append({"role": "user", "text": user_text})

        def emit(text: str) -> Chunk | None:
            if not text:
                return None
            segments[-1].text += text
            return Chunk(segments[-1].kind, text)

        try:
            while True:
                if self.stop_event.is_set():
                    stats.finish = "cancelled"
                    break
                try:
                    column, _masks = next(steps)
                except StopIteration:
                    break
                token = column[0]
                if t_first is None:
                    t_first = time.perf_counter()
                    stats.ttft_s = t_first - t0
                if token in self._ends:
                    stats.finish = "stop"
                    break
                stats.tokens += 1
                action = self._special.get(token)
                if action:
                    chunk = emit(decoder.decode(b"", final=True))
                    if chunk:
                        yield chunk
                    decoder.reset()
                    segments.append(Chunk(action[1] if action[0] == "open" else "text", ""))
                    continue
                chunk = emit(decoder.decode(enc.decode_single_token_bytes(token)))
                if chunk:
                    yield chunk
            chunk = emit(decoder.decode(b"", final=True))
            if chunk:
                yield chunk
        finally:
            steps.close()
            t_end = time.perf_counter()
            stats.seconds = t_end - t0
            if t_first is not None and stats.tokens > 1 and t_end > t_first:
                stats.tokens_per_s = (stats.tokens - 1) / (t_end - t_first)
            elif stats.tokens:
                stats.tokens_per_s = stats.tokens / stats.seconds
            if self.context is not None:
                stats.context = self.context.status()
            self.last_stats = stats
            segments = [c for c in segments if c.text or c.kind != "text"]
            self.last_segments = segments
            if self.mode == "chat":
                self.messages += [{"role": "user", "content": user_text},
                                  {"role": "assistant", "content": _parts(segments)}]
            self.log.append({"role": "assistant", "chunks": [asdict(c) for c in segments], "stats": asdict(stats)})

    def reply(self, user_text: str) -> tuple[list[Chunk], ReplyStats]:
        """The whole reply at once, one chunk per segment (text run, tool call, tool output), and its stats."""
        for _ in self.stream_reply(user_text):
            pass
        return self.last_segments, self.last_stats


# ---- transcripts --------------------------------------------------------------------------------

def transcript_dir(ckpt_dir: str | Path, run: str | None = None) -> Path:
    """<base>/runs/<run>/transcripts for our runs; <ckpt_dir>/transcripts for stock checkpoints."""
    ckpt_dir = Path(ckpt_dir).resolve()
    if run:
        run_dir = ckpt_dir.parents[1] / "runs" / run
        if run_dir.is_dir():
            return run_dir / "transcripts"
    return ckpt_dir / "transcripts"


def _markdown(session: ChatSession) -> str:
    info = session.info
    title = f"{info.get('run') or Path(info.get('checkpoint', 'model')).parent.name} step {info.get('step', '?')}"
    lines = [f"# {session.mode} with {title}", "",
             f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(session.started))} · temperature "
             f"{session.temperature} · top_k {session.top_k} · max_tokens {session.max_tokens} · seed {session.seed}",
             ""]
    for m in session.log:
        if m["role"] == "user":
            lines += ["**You:**", "", m["text"], ""]
            continue
        lines += ["**Model:**", ""]
        for c in m["chunks"]:
            if c["kind"] == "text":
                lines.append(c["text"])
            else:
                lines += ["", "```python" if c["kind"] == "tool_call" else "```text", c["text"], "```", ""]
        s = m["stats"]
        ttft = f"{s['ttft_s'] * 1000:.0f} ms" if s["ttft_s"] is not None else "-"
        lines += ["", f"*{s['tokens']} tokens · first token {ttft} · {s['tokens_per_s']:.1f} tok/s · {s['finish']}*",
                  ""]
    return "\n".join(lines)


def save_transcript(session: ChatSession, directory: str | Path, name: str | None = None) -> tuple[Path, Path]:
    """Write <name>.jsonl and <name>.md (atomically; call again after each turn to update them)."""
    directory = Path(directory)
    name = name or "chat-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(session.started))
    header = {"type": "session", "mode": session.mode, "temperature": session.temperature, "top_k": session.top_k,
              "max_tokens": session.max_tokens, "seed": session.seed, "started": session.started, **session.info}
    jsonl = directory / f"{name}.jsonl"
    md = directory / f"{name}.md"
    atomic_write(jsonl, "\n".join(json.dumps(x) for x in [header, *session.log]) + "\n")
    atomic_write(md, _markdown(session))
    return jsonl, md


def load_transcript(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, messages) of a JSONL transcript."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows or rows[0].get("type") != "session":
        raise EngineError(f"{path}: not a chat transcript (no session header line): pick a .jsonl it wrote")
    return rows[0], rows[1:]

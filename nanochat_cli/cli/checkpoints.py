"""`nanochat-cli checkpoints list|delete`, `nanochat-cli chat` and `nanochat-cli eval`.

    nanochat-cli checkpoints list [--compatible] [--prefab NAME --set k=v ...] [--base-dir DIR] [--json]
    nanochat-cli checkpoints show PATH [--step N] [--json]      the step and its eval tables (CORE, chat eval)
    nanochat-cli checkpoints delete PATH [--step N] [--yes]
    nanochat-cli chat --checkpoint PATH [-p PROMPT] [--mode chat|continue] [--temperature T] [--top-k K]
    nanochat-cli eval --checkpoint PATH [--tokens N] [--max-new-tokens N] [--data-dir DIR] [--json]

PATH is a checkpoint dir (its latest complete step) or one model_XXXXXX.pt file. Without --prefab the
active config is the TUI's (last prefab and its unsaved overrides). Registered into the main parser by
`cli/main.py`; imports stay inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanochat_cli.cli.common import add_set_option, confirm, fail, parse_sets, prefab_store
from nanochat_cli.formatting import file_size, param_count, setting
from nanochat_cli.services.compute import resolve_device

if TYPE_CHECKING:
    from nanochat_cli.services.registry import Registry


def _registry(base: str | None = None, resolved: dict[str, Any] | None = None):
    from nanochat_cli.services.checkpoints.registry import CheckpointRegistry
    from nanochat_cli.services.paths import base_dir

    root = base or (resolved or {}).get("run.base_dir") or base_dir()
    return CheckpointRegistry(Path(root).expanduser())


def _active_config(args: argparse.Namespace) -> dict[str, Any]:
    """--prefab plus --set, or the TUI's prefab and overrides when no --prefab is given."""
    from nanochat_cli.services.state import load_state

    overrides = parse_sets(args.set)
    if args.prefab:
        return prefab_store().resolve(args.prefab, overrides)
    state = load_state()
    return prefab_store().resolve(state.prefab, {**state.overrides, **overrides})


def _row(e, compat, fields) -> dict[str, Any]:
    d = e.to_dict()
    d.pop("user_config")
    d["fields"] = {f.key: e.setting(f.key) for f in fields}  # what plugins show as checkpoint fields
    d["label"] = e.label
    d["resumable"] = e.resumable
    d["compat"] = {"level": compat.level, "reasons": [vars(r) for r in compat.reasons]}
    d["eval"] = e.eval.to_dict() if e.eval else None
    return d


def cmd_checkpoints_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from nanochat_cli.services.registry import REGISTRY

    resolved = _active_config(args)
    rows = _registry(args.base_dir, resolved).with_compat(resolved)
    fields = REGISTRY.checkpoint_fields()
    if args.compatible:
        rows = [(e, c) for e, c in rows if c.loadable]
    if args.json:
        print(json.dumps([_row(e, c, fields) for e, c in rows], indent=1, default=str))
        return 0
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if not rows:
        where = _registry(args.base_dir, resolved).base
        console.print(f"no {'compatible ' if args.compatible else ''}checkpoints under {where} "
                      "(base_checkpoints/, chatsft_checkpoints/, chatrl_checkpoints/)")
        return 0
    colour = {"compatible": "green", "warnings": "yellow", "incompatible": "red"}
    table = Table("checkpoint", "stage", "step", "status", "val bpb", "params", "depth", "vocab", "seq", "window",
                  "tokenizer", *(f.header for f in fields), "date", "size")
    for e, c in rows:
        status = c.level if e.complete else e.status
        table.add_row(e.label, e.phase, str(e.step), f"[{colour.get(c.level, 'red')}]{status}[/]",
                      f"{e.val_bpb:.4f}" if e.val_bpb is not None else "-", param_count(e.params),
                      str(e.depth or "-"), str(e.vocab_size or "-"), str(e.sequence_len or "-"),
                      e.window_pattern or "-", e.tokenizer_hash or "-", *(setting(e.setting(f.key)) for f in fields),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(e.date)), file_size(e.size_bytes))
    console.print(table)
    for e, c in rows:
        for r in c.reasons:
            console.print(f"{e.label} step {e.step}: [{'red' if r.level == 'error' else 'yellow'}]{r.level}[/]: "
                          f"{r.message} — fix: {r.remedy}")
    return 0


def cmd_checkpoints_delete(args: argparse.Namespace) -> int:
    registry = _registry(args.base_dir)
    entry = registry.find(args.path, args.step)
    what = f"{entry.ckpt_dir} step {entry.step} ({entry.status}, {file_size(entry.size_bytes)})"
    if not args.yes:
        if not sys.stdin.isatty():
            return fail(f"checkpoint {what}: deleting needs confirmation: pass --yes")
        if not confirm(f"delete {what}?"):
            print("not deleted")
            return 1
    removed = registry.delete(entry)
    print(f"deleted {what}: {len(removed)} files")
    return 0


def cmd_checkpoints_show(args: argparse.Namespace) -> int:
    """One checkpoint step: what it is, and the eval stages' tables saved beside it (CORE, chat eval)."""
    from rich.console import Console
    from rich.table import Table

    from nanochat_cli.services.checkpoints.stage_evals import score_line, stage_evals, table_rows

    entry = _registry(args.base_dir).find(args.path, args.step)
    evals = stage_evals(entry.path, entry.step)
    if args.json:
        out = {"checkpoint": entry.ckpt_dir, "step": entry.step, "stage": entry.phase, "status": entry.status,
               "evals": [{"suite": r.suite, "score": r.score, "file": str(r.path), "problem": r.problem,
                          "results": [vars(t) for t in r.tasks]} for r in evals]}
        print(json.dumps(out, indent=1, default=str))
        return 0
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    bpb = f" · val bpb {entry.val_bpb:.4f}" if entry.val_bpb is not None else ""
    console.print(f"{entry.label} · step {entry.step} · stage {entry.phase} · {entry.status}{bpb}", markup=False)
    console.print(f"{entry.ckpt_dir} · {file_size(entry.size_bytes)}", markup=False, style="dim")
    if not evals:
        console.print("no eval results beside it: run `nanochat-cli train --prefab cpu-tiny-eval` (or the pipeline) "
                      "to write eval_core_/eval_chat_ files", markup=False)
        return 0
    for result in evals:
        console.print()
        console.print(score_line(result), markup=False, style="bold")
        if result.problem:
            continue
        table = Table("task", "metric", "value", "baseline", "centred", "n")
        for col in table.columns[2:]:
            col.justify = "right"
        for row in table_rows(result):
            table.add_row(*row)
        console.print(table)
    return 0


def _require_complete(entry) -> None:
    from engine.errors import EngineError

    if not entry.complete:
        raise EngineError(f"{entry.ckpt_dir} step {entry.step}: {entry.status} ({entry.problem}): pick another "
                          "step or delete it")


_MARKS = {"tool_call": ("\n[python] ", "\n"), "tool_output": ("[output] ", "\n")}


def _stream(session, text: str, out) -> None:
    """Print one reply as it streams; Ctrl-C stops it (the session ends it before the next token)."""
    kind = "text"
    replies = session.stream_reply(text)
    while True:
        try:
            chunk = next(replies)
        except StopIteration:
            break
        except KeyboardInterrupt:
            session.stop()
            continue
        if chunk.kind != kind:
            if kind != "text":
                out.write(_MARKS[kind][1])
            if chunk.kind != "text":
                out.write(_MARKS[chunk.kind][0])
            kind = chunk.kind
        out.write(chunk.text)
        out.flush()
    out.write("\n")
    s = session.last_stats
    ttft = f"{s.ttft_s * 1000:.0f} ms" if s.ttft_s is not None else "-"
    dropped = f" · {s.dropped_turns} old turns left out" if s.dropped_turns else ""
    print(f"[{s.tokens} tokens · first token {ttft} · {s.tokens_per_s:.1f} tok/s · {s.finish}{dropped}]",
          file=sys.stderr)


def cmd_chat(args: argparse.Namespace) -> int:
    from nanochat_cli.services.checkpoints.chat import ChatSession, save_transcript, transcript_dir

    entry = _registry(args.base_dir).find(args.checkpoint, args.step)
    _require_complete(entry)
    session = ChatSession.from_checkpoint(entry.model_file, device=resolve_device(args.device),
                                          tokenizer_dir=args.tokenizer_dir, mode=chat_mode(args, entry.model_file),
                                          temperature=args.temperature, top_k=args.top_k or None,
                                          max_tokens=args.max_tokens, seed=args.seed)
    directory = transcript_dir(entry.ckpt_dir, entry.run)

    def save() -> None:
        if not args.no_transcript and session.log:
            jsonl, _md = save_transcript(session, directory)
            print(f"[transcript: {jsonl} (+ .md)]", file=sys.stderr)

    if args.prompt is not None:
        _stream(session, args.prompt, sys.stdout)
        save()
        return 0
    print(f"{entry.label} step {entry.step} ({session.mode} mode). Enter sends; /reset clears the history; "
          "/quit or Ctrl-D leaves; Ctrl-C stops a reply.", file=sys.stderr)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print(file=sys.stderr)
            break
        if line.strip() in ("/quit", "/exit"):
            break
        if line.strip() == "/reset":
            session.reset()
            print("[history cleared]", file=sys.stderr)
            continue
        if not line.strip():
            continue
        _stream(session, line, sys.stdout)
        save()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    registry = _registry(args.base_dir)
    entry = registry.find(args.checkpoint, args.step)
    _require_complete(entry)
    report = registry.evaluate(entry, tokens=args.tokens, max_new_tokens=args.max_new_tokens,
                               data_dir=args.data_dir, device=resolve_device(args.device))
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
        return 0
    print(f"{entry.label} step {entry.step}")
    if report.val_bpb is not None:
        print(f"val bpb: {report.val_bpb:.4f} over {report.eval_tokens:,} tokens of {report.data_dir}")
        if entry.val_bpb is not None:  # the listing's figure: another token count gives another number
            over = f" over {entry.val_tokens:,} tokens" if entry.val_tokens else ""
            print(f"(training's last evaluation: val bpb {entry.val_bpb:.4f}{over})")
    for s in report.samples:
        print(f"\n--- {s.name} ({s.mode}, {s.tokens} tokens)\n{s.prompt}\n>>> {s.completion}")
    print(f"\n[{report.seconds:.1f} s on {report.device}; report cached for the Checkpoints screen]", file=sys.stderr)
    return 0


def with_base(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-dir", help="where checkpoints live (default $NANOCHAT_BASE_DIR or ~/.cache/nanochat)")


def with_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="checkpoint dir (latest complete step) or a model_XXXXXX.pt file")
    p.add_argument("--step", type=int, help="step in the dir (default: the latest complete one)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"], help="default: cpu")
    with_base(p)


def setup_checkpoints(ck: argparse.ArgumentParser) -> None:
    csub = ck.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = csub.add_parser("list", help="every checkpoint with its shape, val bpb and compatibility with a config")
    sp.add_argument("--compatible", action="store_true", help="only those the config can load (warnings included)")
    sp.add_argument("--prefab", help="config to check against (default: the TUI's active prefab and overrides)")
    add_set_option(sp)
    with_base(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_checkpoints_list)
    sp = csub.add_parser("show", help="one checkpoint step and its eval tables (CORE per task, chat eval per task)")
    sp.add_argument("path", help="checkpoint dir (latest step) or model_XXXXXX.pt")
    sp.add_argument("--step", type=int, help="the step (default: the file's, or the latest complete)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    with_base(sp)
    sp.set_defaults(func=cmd_checkpoints_show)
    sp = csub.add_parser("delete", help="delete one checkpoint step (meta first, so it never looks complete)")
    sp.add_argument("path", help="checkpoint dir (latest step) or model_XXXXXX.pt")
    sp.add_argument("--step", type=int, help="the step to delete (default: the file's, or the latest complete)")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    with_base(sp)
    sp.set_defaults(func=cmd_checkpoints_delete)


def chat_mode(args: argparse.Namespace, model_file: Path) -> str:
    """--mode, else --continue, else what the checkpoint's phase implies (as the Chat tab does)."""
    from nanochat_cli.services.checkpoints.chat import default_mode

    return args.mode or ("continue" if args.cont else default_mode(model_file))


def setup_chat(sp: argparse.ArgumentParser) -> None:
    with_model(sp)
    sp.add_argument("-p", "--prompt", help="send this one message, stream the reply to stdout and exit")
    sp.add_argument("--mode", choices=("chat", "continue"),
                    help="chat template or plain text continuation (default: continue for a base checkpoint, "
                         "chat for SFT/RL ones)")
    sp.add_argument("--continue", dest="cont", action="store_true", help="same as --mode continue")
    sp.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    sp.add_argument("--top-k", type=int, default=50, help="sample from the k likeliest tokens; 0 = no limit")
    sp.add_argument("--max-tokens", type=int, default=256, help="longest reply in tokens (default 256)")
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--tokenizer-dir", help="tokenizer to use instead of the one the checkpoint records")
    sp.add_argument("--no-transcript", action="store_true", help="do not save the JSONL/Markdown transcript")
    sp.set_defaults(func=cmd_chat)


def setup_eval(sp: argparse.ArgumentParser) -> None:
    with_model(sp)
    sp.add_argument("--tokens", type=int, default=65536, help="tokens of val data for bpb (0 skips it)")
    sp.add_argument("--max-new-tokens", type=int, default=64, help="tokens per eval prompt completion (0 skips them)")
    sp.add_argument("--data-dir", help="parquet shards to take the val split from (default: the training data)")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.set_defaults(func=cmd_eval)


def register(registry: Registry) -> None:
    registry.register_cli_command("checkpoints", setup_checkpoints, "list and delete checkpoints (ours and stock "
                                  "nanochat's)", builtin=True)
    registry.register_cli_command("chat", setup_chat, "chat with a checkpoint (-p: one reply; else a REPL on stdin)",
                                  builtin=True)
    registry.register_cli_command("eval", setup_eval, "val bpb on held-out data and the eval prompt set's "
                                  "completions", builtin=True)

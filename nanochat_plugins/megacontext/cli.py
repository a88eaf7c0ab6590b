"""`nanochat-cli megacontext chat CKPT --doc FILE [--prompt TEXT]`: read a long document through a MegaContext
checkpoint's working context, print its LOD map and the model's continuation."""

from __future__ import annotations

import argparse
from pathlib import Path

from nanochat_cli.plugin_api import AppError


def chat(args: argparse.Namespace) -> int:
    from engine.errors import EngineError
    from nanochat_plugins.megacontext.session import MegaContextModel

    doc = Path(args.doc)
    try:
        text = doc.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AppError(f"{doc}: cannot read it ({type(e).__name__}): pass a UTF-8 text file with --doc") from None
    try:
        mc = MegaContextModel.load(args.checkpoint)
    except EngineError as e:
        raise AppError(str(e)) from None
    answer, _ = mc.continue_text(text, args.prompt, args.max_tokens)
    print(mc.status())
    print(f"--- continuation ({args.max_tokens} tokens at most) ---")
    print(answer)
    return 0


def setup_cli(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mc_command", required=True)
    p = sub.add_parser("chat", help="read a long document through the working context and continue it")
    p.add_argument("checkpoint", help="a MegaContext checkpoint dir or model_XXXXXX.pt file")
    p.add_argument("--doc", required=True, help="the long document (UTF-8 text)")
    p.add_argument("--prompt", default="", help="text appended after the document (a question, say)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.set_defaults(func=chat)

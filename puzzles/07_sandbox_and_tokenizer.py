"""Puzzle 07 · Sandbox and tokenizer (chat rendering + execute_code)

Goal: the two ends of the python tool. Render a chat into token ids the way SFT trains on it: special
tokens around each turn, the assistant's python calls between <|python_start|>/<|python_end|>, the tool's
output between <|output_start|>/<|output_end|>, and a mask saying which tokens the model learns. And run
model-written code in a separate process with limits (time, memory, output) so that hostile code is
contained: no fork bomb outlives it, no file outside its folder is deleted, no secret of the host leaks.
Verified against the engine (engine/tokenizer/bpe.py, engine/execution.py): identical ids and masks for
tool conversations, the same results for ordinary code, and a battery of bad actors contained.

    python -m puzzles.07_sandbox_and_tokenizer            run your code on a small example
    python -m puzzles.07_sandbox_and_tokenizer --verify   compare it with the engine, check by check
    python -m puzzles.07_sandbox_and_tokenizer --peek     read the engine's code for this puzzle

Linux only (the sandbox's limits are POSIX resource limits and process groups).
"""

import sys
from dataclasses import dataclass


def render_conversation(tokenizer, conversation: dict, max_tokens: int = 2048) -> tuple[list[int], list[int]]:
    """(ids, mask) for {"messages": [...]}, cut to max_tokens. Mask 1 = the model learns this token.

    <|bos|> (0). A leading system message is merged into the first user message as
    system + "\\n\\n" + user. Roles then alternate user, assistant. A user turn: <|user_start|> text
    <|user_end|>, all 0. An assistant turn: <|assistant_start|> (0), then its content: a string is one text
    part; a list holds parts {"type": "text" | "python" | "python_output", "text": ...}: text -> its tokens
    (1); python -> <|python_start|> code <|python_end|> (1); python_output -> <|output_start|> output
    <|output_end|> (0: the tool writes it); then <|assistant_end|> (1).
    Use tokenizer.encode(text), tokenizer.encode_special(name), tokenizer.get_bos_token_id().
    """
    raise NotImplementedError("not implemented yet: render_conversation")


def render_for_completion(tokenizer, conversation: dict) -> list[int]:
    """The ids that prime the model for the next assistant reply: render the conversation without its
    last message (the assistant's), then append <|assistant_start|>."""
    raise NotImplementedError("not implemented yet: render_for_completion")


@dataclass
class Result:
    status: str  # "ok", "timeout", "memory", "error" or "blocked"
    stdout: str
    stderr: str


def execute_code(code: str, timeout: float = 5.0, memory_bytes: int = 256 * 2**20,
                 max_output_bytes: int = 64 * 1024) -> Result:
    """Run `code` with a fresh Python interpreter in a child process and report what happened.

    Must hold against hostile code: the child gets an empty temporary working directory (removed
    afterwards) and an empty environment (no host variables); its address space is limited to
    memory_bytes (a MemoryError -> "memory"); it is killed, with every process it started, when
    `timeout` seconds have passed ("timeout"); at most max_output_bytes of each stream are kept; it may
    not delete or modify files outside its folder ("blocked" or "error"). Exit code 0 -> "ok", any other
    failure -> "error". Never raise for anything the code does.
    """
    raise NotImplementedError("not implemented yet: execute_code")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(7))

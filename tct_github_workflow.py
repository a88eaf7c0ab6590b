"""TCT for GitHub Actions workflows, under the module name of the original TCT wheel.

Scripts written against that wheel run unchanged:

    import tct_github_workflow as tct
    tokens = tct.encode(json_str)                  # list[int]
    json_str, consumed, total = tct.decode(tokens)
    tct.vocab_size()                               # 8192
    window = tct.extract_window(tokens, start, end)  # [position_token, *tokens[start:end]]

The implementation is engine.tct (see docs/tct.md).
"""

from engine.tct import decode, encode, extract_window, vocab_size

__all__ = ["decode", "encode", "extract_window", "vocab_size"]

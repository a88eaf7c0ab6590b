"""nanochat-style GPT trainer: model, optimizer, data, tokenizer, training loop, inference.

The engine never imports the TUI (`nanochat_cli`); the TUI talks to it only through the
config file, the telemetry stream and the control channel (see `engine/telemetry.py`).
"""

__version__ = "0.1.0"

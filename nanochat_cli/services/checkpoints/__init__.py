"""Checkpoints: the registry (scan, index, compatibility, baseline, delete), evaluation and chat sessions.

`registry` is torch-free so listing is instant; `evaluate` and `chat` load models and import torch.
"""

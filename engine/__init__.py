"""nanochat-style GPT trainer and inference, runnable on its own (`python -m engine.train`, torchrun).

Model: gpt.py (the GPT), shapes.py (its shape rules, torch-free). Training: train.py (the loop),
optim.py, dataloader.py, dataset.py and corpus.py (data), tokenizer/ with tok_train.py and tok_eval.py,
loss_eval.py (bits per byte), checkpoint.py, sinks.py (W&B, OpenTelemetry). Inference: engine.py
(`Engine`, `KVCache`), inference_load.py, execution.py (the python tool's sandbox).

The engine never imports the app (`nanochat_cli`) or plugins. A running job and the app talk through
the config file, the telemetry stream (telemetry.py) and the control channel (control.py); the app also
imports the torch-free modules directly (errors.py, shared.py, config.py, shapes.py, telemetry.py,
control.py) and loads the torch ones only off its UI thread (checkpoints, chat, evaluation).
"""

import os
import time

__version__ = "0.1.0"
IMPORTED_AT = time.time()  # start-up phases of a trainer count from here (engine/startup.py)

# OpenMP threads that sleep when idle instead of spinning. Read once, when torch loads OpenMP, so it is set
# here, before any engine module imports torch (processes started from this one inherit it). On a busy CPU a
# spinning thread holds a core another thread needs and every parallel region waits on it: a 2-thread training
# step measured 1.5-2.5x slower with libgomp's default than with PASSIVE on a loaded 2-core machine (and there
# PASSIVE with 2 threads was as fast as 1 thread). An explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
